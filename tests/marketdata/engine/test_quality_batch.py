"""``QualityValidator.validate_trades`` equals ``validate_trade`` one by one, state included."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.engine import quality_batch
from marketdata.engine.events import Trade
from marketdata.engine.quality import ACCEPTED, QualityThresholds, QualityValidator, Verdict
from marketdata.engine.trade_batch import TradeColumns
from tests.marketdata.streams import SMALL, fault_rates, faulty_trades, split, validator_state


def scalar_and_batch(
    trades: list[Trade], chunks: list[list[Trade]], thresholds: QualityThresholds
) -> tuple[QualityValidator, list, QualityValidator, list]:
    one, bulk = QualityValidator(default=thresholds), QualityValidator(default=thresholds)
    expected = [one.validate_trade(t) for t in trades]
    got = []
    for chunk in chunks:
        got.extend(bulk.validate_trades(TradeColumns.of(chunk)))
    return one, expected, bulk, got


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    faults=fault_rates,
    sequences=st.booleans(),
    venues=st.sampled_from([("sim",), ("sim", "polygon")]),
    block=st.sampled_from([7, 64, 1024]),
)
def test_batches_equal_one_by_one_on_streams_with_faults(
    seed: int, faults: dict, sequences: bool, venues: tuple, block: int
) -> None:
    trades = faulty_trades(seed, 600, faults, venues=venues, sequences=sequences)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(quality_batch, "BLOCK", block)
        one, expected, bulk, got = scalar_and_batch(trades, split(trades, seed), SMALL)
    assert got == expected
    assert validator_state(bulk) == validator_state(one)


def test_clean_stretches_are_validated_in_bulk_and_flag_like_the_scalar_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faults = {"outlier": 0.01, "volume": 0.02, "spike": 0.002, "duplicate": 0.002}
    trades = faulty_trades(11, 20_000, faults, symbols=("BTC-USD", "ETH-USD", "SOL-USD"))
    scalar_calls = []
    original = QualityValidator.validate_trade

    def counted(self, trade):
        scalar_calls.append(trade)
        return original(self, trade)

    one = QualityValidator()
    expected = [one.validate_trade(t) for t in trades]
    monkeypatch.setattr(QualityValidator, "validate_trade", counted)
    bulk = QualityValidator()
    got = []
    for chunk in split(trades, 3, largest=5_000):
        got.extend(bulk.validate_trades(TradeColumns.of(chunk)))
    assert got == expected
    assert validator_state(bulk) == validator_state(one)
    flagged = [r for r in got if r.verdict is Verdict.FLAG]
    assert {f.rule for r in flagged for f in r.findings} >= {"zscore_outlier", "volume_spike"}
    assert any(r.quarantined for r in got)  # spikes and duplicates did happen
    assert len(scalar_calls) < len(trades) // 4  # most trades never touched the scalar rules


def test_trades_the_columns_cannot_hold_go_through_the_scalar_rules() -> None:
    trades = faulty_trades(5, 200, {})
    naive = trades[50]
    odd = [
        *trades[:50],
        Trade(naive.symbol, naive.ts.replace(tzinfo=None), naive.price, naive.size, "sim", "n"),
        Trade(naive.symbol, naive.ts, 7, 1.0, "sim", "int-price"),
        Trade(naive.symbol, naive.ts, "7", 1.0, "sim", "str-price"),  # type: ignore[arg-type]
        *trades[51:],
    ]
    columns = TradeColumns.of(odd)
    assert not columns.columnar
    one = QualityValidator()
    expected = []
    for trade in odd:
        try:
            expected.append(one.validate_trade(trade))
        except TypeError as exc:
            expected.append(type(exc))
    got = QualityValidator().validate_trades(columns, catch=(TypeError,))
    assert [type(r) if isinstance(r, Exception) else r for r in got] == expected
    assert expected[52] is TypeError and expected[50].quarantined


@pytest.mark.parametrize("window", [200, 20])
def test_long_clean_stream_keeps_the_running_sums_of_the_scalar_code(window: int) -> None:
    thresholds = QualityThresholds(zscore_window=window, zscore_min_samples=min(50, window))
    trades = faulty_trades(2, 12_000, {"outlier": 0.003}, symbols=("BTC-USD",))
    one, expected, bulk, got = scalar_and_batch(trades, split(trades, 9, 4_000), thresholds)
    assert got == expected
    assert validator_state(bulk) == validator_state(one)
    assert sum(r is not ACCEPTED for r in got) > 10


def test_columns_order_aware_timestamps_like_datetimes() -> None:
    trades = faulty_trades(4, 50, {"out_of_order": 0.2, "same_ts": 0.2})
    columns = TradeColumns.of(trades)
    for a, b, ea, eb in zip(trades, trades[1:], columns.epoch, columns.epoch[1:], strict=False):
        assert (a.ts < b.ts) == (ea < eb) and (a.ts == b.ts) == (ea == eb)
    assert isinstance(trades[0].ts, datetime)
