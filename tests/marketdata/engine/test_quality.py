"""Tests of the market-data quality validator."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.engine.errors import QualityConfigError
from marketdata.engine.events import (
    Bar,
    BookDelta,
    BookSnapshot,
    Quote,
    SentimentReading,
    Side,
    Trade,
)
from marketdata.engine.quality import (
    ACCEPTED,
    QualityRule,
    QualityThresholds,
    QualityValidator,
    ValidationResult,
    Verdict,
    validate_all,
)
from marketdata.engine.simulator import SimulatedMarket

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


class TradeFactory:
    """Build trades with increasing ids and timestamps."""

    def __init__(self, symbol: str = "BTC-USD", venue: str = "sim") -> None:
        self.symbol = symbol
        self.venue = venue
        self.n = 0

    def __call__(self, price: float, size: float = 1.0, **kw: object) -> Trade:
        self.n += 1
        fields = {
            "symbol": self.symbol,
            "ts": T0 + timedelta(milliseconds=100 * self.n),
            "price": price,
            "size": size,
            "venue": self.venue,
            "trade_id": f"{self.venue}-{self.n}",
            "side": Side.BUY,
        }
        fields.update(kw)
        return Trade(**fields)  # type: ignore[arg-type]


def rules(result: ValidationResult) -> set[QualityRule]:
    return {f.rule for f in result.findings}


def bar(ts: datetime, o: float, h: float, low: float, c: float, v: float = 10.0, **kw) -> Bar:
    return Bar("BTC-USD", kw.pop("timeframe", "1m"), ts, o, h, low, c, v, **kw)


def test_clean_trade_is_accepted_without_findings() -> None:
    result = QualityValidator().validate(TradeFactory()(50_000.0))
    assert result is ACCEPTED
    assert result.verdict is Verdict.ACCEPT and result.findings == ()
    assert not result.quarantined and not result.flagged


@pytest.mark.parametrize(
    ("price", "size", "rule"),
    [
        (0.0, 1.0, QualityRule.BAD_PRICE),
        (-5.0, 1.0, QualityRule.BAD_PRICE),
        (math.nan, 1.0, QualityRule.BAD_PRICE),
        (math.inf, 1.0, QualityRule.BAD_PRICE),
        (100.0, -1.0, QualityRule.BAD_SIZE),
        (100.0, 0.0, QualityRule.BAD_SIZE),
        (100.0, math.nan, QualityRule.BAD_SIZE),
    ],
)
def test_malformed_trades_are_quarantined(price: float, size: float, rule: QualityRule) -> None:
    result = QualityValidator().validate(TradeFactory()(price, size))
    assert result.verdict is Verdict.QUARANTINE
    assert rules(result) == {rule}
    assert result.findings[0].symbol == "BTC-USD" and result.findings[0].reason


def test_naive_timestamp_is_quarantined() -> None:
    trade = TradeFactory()(100.0, ts=datetime(2024, 1, 1))
    result = QualityValidator().validate(trade)
    assert result.quarantined and rules(result) == {QualityRule.BAD_TIMESTAMP}


def test_duplicate_trade_id_per_venue_and_symbol() -> None:
    v = QualityValidator()
    make = TradeFactory()
    first = make(100.0)
    assert v.validate(first) is ACCEPTED
    again = v.validate(first)
    assert again.quarantined and rules(again) == {QualityRule.DUPLICATE}
    other_venue = Trade(
        first.symbol, first.ts, 100.0, 1.0, venue="coinbase", trade_id=first.trade_id
    )
    other_symbol = Trade("ETH-USD", first.ts, 100.0, 1.0, venue="sim", trade_id=first.trade_id)
    assert v.validate(other_venue) is ACCEPTED
    assert v.validate(other_symbol) is ACCEPTED
    assert v.rule_counts == {"duplicate": 1}


def test_duplicate_memory_is_bounded() -> None:
    v = QualityValidator(default=QualityThresholds(duplicate_memory=3))
    make = TradeFactory()
    trades = [make(100.0) for _ in range(5)]
    for t in trades:
        assert not v.validate(t).quarantined
    assert v.validate(trades[-1]).quarantined  # recent id remembered
    late_copy = Trade(**{**_fields(trades[0]), "ts": trades[-1].ts})
    assert not v.validate(late_copy).quarantined  # oldest id forgotten after 3 newer ones


def _fields(trade: Trade) -> dict[str, object]:
    return {name: getattr(trade, name) for name in Trade.__dataclass_fields__}


def test_sequence_gap_repeat_and_regression() -> None:
    v = QualityValidator()
    make = TradeFactory()
    assert v.validate(make(100.0, sequence=1)) is ACCEPTED
    assert v.validate(make(100.0, sequence=2)) is ACCEPTED
    gap = v.validate(make(100.0, sequence=5))
    assert gap.verdict is Verdict.FLAG and rules(gap) == {QualityRule.SEQUENCE_GAP}
    assert "2 message(s) missing" in gap.findings[0].reason
    repeat = v.validate(make(100.0, sequence=5))
    assert repeat.quarantined and rules(repeat) == {QualityRule.DUPLICATE}
    back = v.validate(make(115.0, sequence=3))
    assert back.flagged and rules(back) == {QualityRule.OUT_OF_ORDER}
    assert v.validate(make(121.0, sequence=6)).quarantined  # reference still 100, not 115
    assert v.validate(make(100.0, sequence=7)) is ACCEPTED


def test_sequence_check_can_be_disabled_per_symbol() -> None:
    v = QualityValidator({"BTC-USD": QualityThresholds(check_sequence=False)})
    make = TradeFactory()
    v.validate(make(100.0, sequence=1))
    assert v.validate(make(100.0, sequence=9)) is ACCEPTED


def test_out_of_order_trade_is_flagged_and_does_not_move_reference() -> None:
    v = QualityValidator()
    make = TradeFactory()
    v.validate(make(100.0))
    v.validate(make(100.0))
    old = make(115.0, ts=T0)  # older than the last trade, within the spike limit
    result = v.validate(old)
    assert result.flagged and rules(result) == {QualityRule.OUT_OF_ORDER}
    # Reference still 100: 121 is a spike from 100 (it would not be from 115).
    assert v.validate(make(121.0)).quarantined


def test_single_bad_print_is_quarantined_and_cannot_move_the_reference() -> None:
    v = QualityValidator()
    make = TradeFactory()
    for _ in range(3):
        v.validate(make(100.0))
    spike = v.validate(make(130.0))
    assert spike.quarantined and rules(spike) == {QualityRule.PRICE_SPIKE}
    assert "+30.0%" in spike.findings[0].reason
    # Had the bad print become the reference, 100.5 would be a -23 % spike from 130.
    assert v.validate(make(100.5)) is ACCEPTED


def test_reference_can_be_seeded_so_a_bad_first_print_is_caught() -> None:
    v = QualityValidator()
    v.set_reference("BTC-USD", 100.0, venue="sim")
    make = TradeFactory()
    assert v.validate(make(300.0)).quarantined
    assert v.validate(make(101.0)) is ACCEPTED
    unseeded = QualityValidator()
    assert unseeded.validate(TradeFactory()(300.0)) is ACCEPTED


def test_spike_threshold_is_per_symbol() -> None:
    v = QualityValidator({"DOGE-USD": QualityThresholds(price_spike_pct=0.5)})
    btc, doge = TradeFactory("BTC-USD"), TradeFactory("DOGE-USD")
    v.validate(btc(100.0))
    v.validate(doge(100.0))
    assert v.validate(btc(130.0)).quarantined
    assert not v.validate(doge(130.0)).quarantined
    assert v.thresholds_for("DOGE-USD").price_spike_pct == 0.5
    assert v.thresholds_for("ETH-USD") == QualityThresholds()


def test_confirmed_level_shift_reanchors_the_reference() -> None:
    v = QualityValidator(default=QualityThresholds(spike_confirmations=3))
    make = TradeFactory()
    v.validate(make(100.0))
    verdicts = [v.validate(make(p)).verdict for p in (140.0, 141.0, 139.5, 140.2)]
    assert verdicts == [Verdict.QUARANTINE, Verdict.QUARANTINE, Verdict.FLAG, Verdict.ACCEPT]
    assert v.validate(make(100.0)).quarantined  # 100 is now the spike


def test_alternating_bad_prints_never_confirm_a_level() -> None:
    v = QualityValidator(default=QualityThresholds(spike_confirmations=2))
    make = TradeFactory()
    v.validate(make(100.0))
    for _ in range(5):
        assert v.validate(make(150.0)).quarantined
        assert v.validate(make(100.0)) is ACCEPTED


def test_volume_spike_is_flagged() -> None:
    v = QualityValidator()
    make = TradeFactory()
    for i in range(30):
        v.validate(make(100.0, size=1.0 + (i % 3) * 0.1))
    assert v.validate(make(100.0, size=5.4)) is ACCEPTED
    result = v.validate(make(100.0, size=6.0))
    assert result.flagged and rules(result) == {QualityRule.VOLUME_SPIKE}


def test_volume_check_waits_for_enough_samples() -> None:
    v = QualityValidator()
    make = TradeFactory()
    for _ in range(5):
        v.validate(make(100.0, size=1.0))
    assert v.validate(make(100.0, size=100.0)) is ACCEPTED


def test_zscore_outlier_is_flagged_but_kept() -> None:
    v = QualityValidator()
    make = TradeFactory()
    price = 100.0
    for i in range(120):
        price *= 1.0001 if i % 2 else 0.9999
        assert v.validate(make(price)) is ACCEPTED
    result = v.validate(make(price * 1.01))
    assert result.flagged and rules(result) == {QualityRule.OUTLIER}
    assert "z-score" in result.findings[0].reason


def test_flat_prices_never_produce_infinite_zscores() -> None:
    v = QualityValidator()
    make = TradeFactory()
    for _ in range(100):
        v.validate(make(100.0))
    assert v.validate(make(100.01)) is ACCEPTED


def test_stale_symbols_are_reported_for_an_injected_now() -> None:
    v = QualityValidator({"ETH-USD": QualityThresholds(stale_after=timedelta(seconds=5))})
    v.validate(Trade("BTC-USD", T0, 100.0, 1.0, trade_id="1"))
    v.validate(Trade("ETH-USD", T0 + timedelta(seconds=50), 10.0, 1.0, trade_id="1"))
    assert v.stale_findings(T0 + timedelta(seconds=20)) == ()
    now = T0 + timedelta(seconds=58)
    found = v.stale_findings(now, symbols=["BTC-USD", "ETH-USD", "SOL-USD"])
    assert [(f.symbol, f.rule, f.verdict) for f in found] == [
        ("BTC-USD", QualityRule.STALE, Verdict.FLAG),
        ("ETH-USD", QualityRule.STALE, Verdict.FLAG),
        ("SOL-USD", QualityRule.STALE, Verdict.FLAG),
    ]
    assert "never seen" in found[2].reason


def test_quarantined_events_do_not_keep_a_feed_alive() -> None:
    v = QualityValidator()
    v.validate(Trade("BTC-USD", T0, 100.0, 1.0, trade_id="1"))
    v.validate(Trade("BTC-USD", T0 + timedelta(seconds=40), -1.0, 1.0, trade_id="2"))
    assert [f.symbol for f in v.stale_findings(T0 + timedelta(seconds=45))] == ["BTC-USD"]


def test_reset_forgets_state_of_one_symbol() -> None:
    v = QualityValidator()
    btc, eth = TradeFactory("BTC-USD"), TradeFactory("ETH-USD")
    v.validate(btc(100.0))
    v.validate(eth(100.0))
    v.reset(symbol="BTC-USD")
    assert v.validate(btc(300.0)) is ACCEPTED
    assert v.validate(eth(300.0)).quarantined


# -- bars -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ohlcv", "rule"),
    [
        ((100, 99, 98, 99.5, 1), QualityRule.OHLC),  # high below open
        ((100, 101, 100.5, 100.8, 1), QualityRule.OHLC),  # low above open
        ((100, 101, 99, 102, 1), QualityRule.OHLC),  # close above high
        ((100, 101, 0, 100, 1), QualityRule.BAD_PRICE),
        ((math.nan, 101, 99, 100, 1), QualityRule.BAD_PRICE),
        ((100, 101, 99, 100, -1), QualityRule.BAD_SIZE),
    ],
)
def test_impossible_bars_are_quarantined(ohlcv: tuple[float, ...], rule: QualityRule) -> None:
    result = QualityValidator().validate(bar(T0, *ohlcv))
    assert result.quarantined and rules(result) == {rule}


def test_bar_duplicates_gaps_and_order() -> None:
    v = QualityValidator()
    assert v.validate(bar(T0, 100, 101, 99, 100)) is ACCEPTED
    assert v.validate(bar(T0 + timedelta(minutes=1), 100, 101, 99, 100)) is ACCEPTED
    dup = v.validate(bar(T0 + timedelta(minutes=1), 100, 101, 99, 100))
    assert dup.quarantined and rules(dup) == {QualityRule.DUPLICATE}
    gap = v.validate(bar(T0 + timedelta(minutes=4), 100, 101, 99, 100))
    assert gap.flagged and rules(gap) == {QualityRule.GAP}
    assert gap.findings[0].reason.startswith("2 1m bar(s) missing")
    late = v.validate(bar(T0 + timedelta(minutes=2), 100, 101, 99, 100))
    assert late.flagged and rules(late) == {QualityRule.OUT_OF_ORDER}


def test_bar_gap_tolerance_and_timeframes_are_independent() -> None:
    v = QualityValidator(default=QualityThresholds(bar_gap_tolerance=2))
    v.validate(bar(T0, 100, 101, 99, 100))
    assert v.validate(bar(T0 + timedelta(minutes=3), 100, 101, 99, 100)) is ACCEPTED
    assert v.validate(bar(T0, 100, 101, 99, 100, timeframe="1h")) is ACCEPTED
    assert v.validate(bar(T0 + timedelta(minutes=10), 100, 101, 99, 100)).flagged


def test_bar_unknown_timeframe_and_vwap_outside_range() -> None:
    v = QualityValidator()
    assert rules(v.validate(bar(T0, 100, 101, 99, 100, timeframe="7m"))) == {QualityRule.BAD_VALUE}
    result = v.validate(bar(T0, 100, 101, 99, 100, vwap=105.0))
    assert result.flagged and rules(result) == {QualityRule.OHLC}


def test_bar_price_spike_and_volume_spike() -> None:
    v = QualityValidator()
    ts = T0
    for _ in range(25):
        ts += timedelta(minutes=1)
        v.validate(bar(ts, 100, 101, 99, 100, v=10.0))
    spike = v.validate(bar(ts + timedelta(minutes=1), 100, 140, 99, 139))
    assert spike.quarantined and rules(spike) == {QualityRule.PRICE_SPIKE}
    heavy = v.validate(bar(ts + timedelta(minutes=2), 100, 101, 99, 100, v=80.0))
    # The quarantined bar was never accepted, so its window now shows as a gap.
    assert heavy.flagged and rules(heavy) == {QualityRule.VOLUME_SPIKE, QualityRule.GAP}


# -- quotes, books, sentiment ------------------------------------------------------------------


def test_quotes() -> None:
    v = QualityValidator()
    assert v.validate(Quote("BTC-USD", T0, 100.0, 1.0, 100.1, 1.0)) is ACCEPTED
    crossed = v.validate(Quote("BTC-USD", T0, 100.2, 1.0, 100.1, 1.0))
    assert crossed.quarantined and rules(crossed) == {QualityRule.CROSSED}
    assert rules(v.validate(Quote("BTC-USD", T0, 100.0, -1.0, 100.1, 1.0))) == {
        QualityRule.BAD_SIZE
    }
    spike = v.validate(Quote("BTC-USD", T0, 150.0, 1.0, 150.1, 1.0))
    assert spike.quarantined and rules(spike) == {QualityRule.PRICE_SPIKE}
    older = v.validate(Quote("BTC-USD", T0 - timedelta(seconds=1), 100.0, 1.0, 100.1, 1.0))
    assert older.flagged and rules(older) == {QualityRule.OUT_OF_ORDER}


def test_books() -> None:
    v = QualityValidator()
    good = BookSnapshot("BTC-USD", T0, ((100.0, 1.0), (99.0, 2.0)), ((101.0, 1.0),), sequence=1)
    assert v.validate(good) is ACCEPTED
    crossed = BookSnapshot("BTC-USD", T0, ((101.0, 1.0),), ((101.0, 1.0),))
    assert rules(v.validate(crossed)) == {QualityRule.CROSSED}
    unsorted = BookSnapshot("BTC-USD", T0, ((99.0, 1.0), (100.0, 2.0)), ((101.0, 1.0),))
    assert rules(v.validate(unsorted)) == {QualityRule.BAD_VALUE}
    negative = BookSnapshot("BTC-USD", T0, ((100.0, -1.0),), ((101.0, 1.0),))
    assert v.validate(negative).quarantined
    delta = BookDelta("BTC-USD", T0, (("buy", 100.0, 0.0),), sequence=3)
    result = v.validate(delta)
    assert result.flagged and rules(result) == {QualityRule.SEQUENCE_GAP}
    bad = BookDelta("BTC-USD", T0, (("bid", 100.0, 1.0),), sequence=4)
    assert v.validate(bad).quarantined


def test_sentiment_range() -> None:
    v = QualityValidator()
    assert v.validate(SentimentReading("BTC-USD", T0, "x", 0.4, 0.9)) is ACCEPTED
    assert v.validate(SentimentReading("BTC-USD", T0, "x", 1.4, 0.9)).quarantined
    assert v.validate(SentimentReading("BTC-USD", T0, "x", 0.4, math.nan)).quarantined


def test_unknown_event_type_is_an_error() -> None:
    with pytest.raises(TypeError):
        QualityValidator().validate("not an event")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"price_spike_pct": 0}, {"volume_window": 0}, {"stale_after": timedelta(0)}],
)
def test_invalid_thresholds_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(QualityConfigError):
        QualityThresholds(**kwargs)  # type: ignore[arg-type]


def test_simulated_feed_is_never_quarantined_and_rarely_flagged() -> None:
    market = SimulatedMarket(seed=7)
    report = validate_all(QualityValidator(), market.events(1500))
    total = report.accepted + report.flagged + report.quarantined
    assert report.quarantined == 0, report.findings[:5]
    assert report.flagged / total < 0.01


# -- invariants ------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    moves=st.lists(st.floats(-0.02, 0.02), min_size=1, max_size=80),
    sizes=st.lists(st.floats(0.01, 50.0), min_size=80, max_size=80),
    bad=st.lists(
        # From index 1: the first print of a stream has no reference (see set_reference).
        st.tuples(st.integers(1, 79), st.sampled_from([0.0, -1.0, math.nan, 3.0, 0.5])),
        max_size=10,
        unique_by=lambda x: x[0],
    ),
)
def test_bad_prints_never_change_the_verdicts_of_good_events(
    moves: list[float], sizes: list[float], bad: list[tuple[int, float]]
) -> None:
    make = TradeFactory()
    price = 1_000.0
    good = []
    for move, size in zip(moves, sizes, strict=False):
        price *= 1.0 + move
        good.append(make(price, size))
    reference = QualityValidator()  # the good events alone, through one validator
    clean = [reference.validate(t) for t in good]
    bad_at = dict(bad)
    validator = QualityValidator()
    mixed = []
    for i, trade in enumerate(good):
        if i in bad_at:
            # A bad print at the previous good price times a factor: non-positive, NaN or ±>20 %.
            factor = bad_at[i]
            bad_trade = Trade(trade.symbol, trade.ts, trade.price * factor, 1.0, trade_id=f"bad{i}")
            assert validator.validate(bad_trade).quarantined
        mixed.append(validator.validate(trade))
    assert mixed == clean
    for result in clean:
        expected = max((f.verdict for f in result.findings), key=lambda v: v.severity, default=None)
        assert result.verdict is (expected or Verdict.ACCEPT)
