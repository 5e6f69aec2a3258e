"""One event, one symbol or a flood of symbols never stops the bars of the others.

Per-symbol watermarks in the aggregator and resampler, the clock horizon and the subscription
screen of ``MarketDataPipeline``, bounded per-symbol state, and a stop that never closes a
partial bar.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from marketdata.engine.aggregator import BarAggregator, BarResampler
from marketdata.engine.events import Bar, Quote, Trade
from marketdata.pipeline import EventHorizon, MarketDataPipeline, QualityRecord

NOW = datetime(2026, 3, 2, 19, 27, 32, tzinfo=UTC)
START = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)
Y2200 = datetime(2200, 1, 1, tzinfo=UTC)


class Clock:
    """An injected wall clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def trade(symbol: str, ts: datetime, price: float = 100.0, n: int = 0) -> Trade:
    return Trade(symbol, ts, price, 1.0, "test", f"{symbol}-{ts.timestamp()}-{n}")


def minutes_of_trades(symbols: list[str], minutes: range) -> list[Trade]:
    """Two trades per symbol per minute, in time order."""
    return [
        trade(sym, START + timedelta(minutes=m, seconds=s), 100.0 + m)
        for m in minutes
        for s in (10, 40)
        for sym in symbols
    ]


def bars_of(outputs: list[object], symbol: str, timeframe: str = "1m") -> list[datetime]:
    return sorted(
        o.ts
        for o in outputs
        if isinstance(o, Bar) and o.symbol == symbol and o.timeframe == timeframe
    )


def run(pipeline: MarketDataPipeline, events: list[object], clock: Clock | None = None) -> list:
    """Feed events one by one, the clock following the events (a live feed)."""
    out: list[object] = []
    for event in events:
        if clock is not None and isinstance(event, Trade) and event.ts < Y2200:
            clock.now = event.ts
        out.extend(pipeline.process(event))
    return out


# -- per-symbol watermarks ------------------------------------------------------------------------


def test_one_symbol_far_ahead_does_not_make_the_others_late():
    agg = BarAggregator("1m")
    early = minutes_of_trades(["BTC-USD", "ETH-USD"], range(0, 2))
    later = minutes_of_trades(["ETH-USD"], range(2, 6))
    bars = agg.add_many(early)
    bars += agg.add(trade("BTC-USD", Y2200))
    bars += agg.add_many(later)
    eth = sorted(b.ts for b in bars if b.symbol == "ETH-USD")
    assert eth == [START + timedelta(minutes=m) for m in range(0, 5)]  # minute 5 still open
    assert agg.stats.late_trades == 0


def test_a_resampler_builds_each_symbols_bars_whatever_another_symbol_sends():
    resampler = BarResampler("5m")
    out: list[Bar] = []
    far = Bar("BTC-USD", "1m", Y2200, 1.0, 1.0, 1.0, 1.0, 1.0)
    out += resampler.add(far)
    for m in range(0, 11):
        ts = START + timedelta(minutes=m)
        out += resampler.add(Bar("ETH-USD", "1m", ts, 2.0, 2.0, 2.0, 2.0, 1.0))
    eth = [b.ts for b in out if b.symbol == "ETH-USD" and not b.amended]
    assert eth == [START, START + timedelta(minutes=5)]
    assert resampler.stats.late_trades == 0


def test_a_trade_dated_2200_without_a_horizon_still_leaves_other_symbols_bars_building():
    pipeline = MarketDataPipeline(source="test", clock=Clock(NOW))
    events = minutes_of_trades(["BTC-USD", "ETH-USD"], range(0, 2))
    events += [trade("BTC-USD", Y2200)]
    events += minutes_of_trades(["ETH-USD"], range(2, 6))
    out = run(pipeline, events)
    assert bars_of(out, "ETH-USD") == [START + timedelta(minutes=m) for m in range(0, 5)]


# -- the clock horizon ----------------------------------------------------------------------------


def test_a_trade_dated_2200_is_quarantined_and_every_symbol_keeps_its_bars():
    clock = Clock(START)
    pipeline = MarketDataPipeline(source="test", clock=clock, horizon=EventHorizon())
    events = minutes_of_trades(["BTC-USD", "ETH-USD"], range(0, 2))
    events += [trade("BTC-USD", Y2200)]
    events += minutes_of_trades(["BTC-USD", "ETH-USD"], range(2, 6))
    out = run(pipeline, events, clock)
    expected = [START + timedelta(minutes=m) for m in range(0, 5)]
    assert bars_of(out, "BTC-USD") == expected and bars_of(out, "ETH-USD") == expected
    records = [o for o in out if isinstance(o, QualityRecord)]
    assert [(r.rule, r.verdict, r.symbol, r.event_ts) for r in records] == [
        ("time_horizon", "quarantine", "BTC-USD", Y2200)
    ]
    assert Y2200 not in {o.ts for o in out if isinstance(o, Trade)}
    assert pipeline.counts.quarantined == 1 and pipeline.counts.late_trades == 0


def test_the_horizon_is_configurable_and_applies_to_the_batch_path_too():
    clock = Clock(START + timedelta(minutes=1))
    horizon = EventHorizon(future=timedelta(seconds=30), past=timedelta(minutes=10))
    events = [trade("BTC-USD", START + timedelta(minutes=1, seconds=s), n=s) for s in range(0, 40)]
    too_old = trade("BTC-USD", START - timedelta(minutes=20))
    events[5:5] = [too_old]  # in the middle of a run long enough for the bulk path
    one = MarketDataPipeline(source="test", clock=clock, horizon=horizon)
    bulk = MarketDataPipeline(source="test", clock=clock, horizon=horizon)
    expected = [out for event in events for out in one.process(event)]
    got = bulk.process_batch(events)
    assert got == expected
    quarantined = [o for o in got if isinstance(o, QualityRecord)]
    # 30 s ahead of the clock is accepted; 31 s and later are not, nor 20 minutes back.
    assert [r.event_ts for r in quarantined] == [too_old.ts] + [
        START + timedelta(minutes=1, seconds=s) for s in range(31, 40)
    ]
    assert bulk.counts == one.counts and bulk.counts.quarantined == 10


# -- subscriptions and bounded per-symbol state ---------------------------------------------------


def test_an_unsubscribed_symbol_is_dropped_and_counted_and_stops_nothing():
    pipeline = MarketDataPipeline(source="test", clock=Clock(NOW), symbols=["BTC-USD"])
    events = minutes_of_trades(["BTC-USD"], range(0, 2))
    events += [trade("DOGE-USD", Y2200), Quote("DOGE-USD", START, 1.0, 1.0, 1.1, 1.0)]
    events += minutes_of_trades(["BTC-USD"], range(2, 4))
    out = run(pipeline, events)
    assert bars_of(out, "BTC-USD") == [START + timedelta(minutes=m) for m in range(0, 3)]
    assert not [o for o in out if getattr(o, "symbol", "") == "DOGE-USD"]
    assert pipeline.counts.unsubscribed == 2 and pipeline.counts.quarantined == 0
    assert all("DOGE-USD" not in key for key in pipeline.validator._series)


def per_symbol_state(pipeline: MarketDataPipeline) -> int:
    """Return the largest per-symbol dict anywhere in the pipeline."""
    sizes = [len(pipeline.validator._series)]
    for agg in pipeline.aggregators:
        sizes += [len(agg._open), len(agg._closed), len(agg._closed_until)]
    sizes += [len(r._symbols) for r in pipeline.resamplers]
    return max(sizes)


def flood(count: int) -> list[Trade]:
    """Trades of ``count`` distinct unknown symbols, a good BTC trade every 1,000."""
    out: list[Trade] = []
    for i in range(count):
        ts = START + timedelta(milliseconds=i)
        out.append(trade(f"U{i}-USD", ts))
        if i % 1_000 == 0:
            out.append(trade("BTC-USD", ts, n=i))
    return out


def test_a_flood_of_unknown_symbols_creates_no_state_and_reaches_no_writer():
    events = flood(200_000)
    subscribed = MarketDataPipeline(source="test", clock=Clock(NOW), symbols=["BTC-USD"])
    outputs: list[object] = []
    for begin in range(0, len(events), 5_000):
        outputs += subscribed.process_batch(events[begin : begin + 5_000])
    assert per_symbol_state(subscribed) <= 1
    assert {getattr(o, "symbol", "BTC-USD") for o in outputs} == {"BTC-USD"}
    assert subscribed.counts.unsubscribed == 200_000
    assert subscribed.counts.accepted == 200


def test_without_a_subscription_per_symbol_state_is_capped():
    pipeline = MarketDataPipeline(source="test", clock=Clock(NOW), max_symbols=50)
    events = flood(5_000)
    outputs = pipeline.process_batch(events)
    assert per_symbol_state(pipeline) <= 50
    assert len({getattr(o, "symbol", "") for o in outputs} - {""}) <= 50
    # The first 50 symbols seen (U0, BTC-USD, U1 ... U48) are admitted, the rest dropped.
    assert pipeline.counts.accepted == 49 + 5
    assert pipeline.counts.unsubscribed == 5_005 - 54


# -- a graceful stop never closes a partial bar ----------------------------------------------------


def test_a_stop_without_partial_bars_keeps_finished_windows_and_drops_the_unfinished_one():
    clock = Clock(NOW)  # 19:27:32: the 19:27 minute and the 19:25 five minutes are unfinished
    events = [trade("BTC-USD", datetime(2026, 3, 2, 19, 26, s, tzinfo=UTC), n=s) for s in (5, 50)]
    events += [trade("BTC-USD", datetime(2026, 3, 2, 19, 27, s, tzinfo=UTC), n=s) for s in (5, 31)]
    pipeline = MarketDataPipeline(source="test", clock=clock)
    out = run(pipeline, events)
    closing = pipeline.flush(partial=False)
    stamps = {(b.timeframe, b.ts.strftime("%H:%M:%S")) for b in closing}
    assert ("1s", "19:27:31") in stamps  # that second has ended
    assert not any(
        b.ts >= datetime(2026, 3, 2, 19, 27, tzinfo=UTC) for b in closing if b.timeframe == "1m"
    )
    assert not any(b.timeframe in ("5m", "15m", "1h", "4h", "1d") for b in closing)
    assert pipeline.counts.partial_bars >= 2  # the 1m bar of 19:27 and the 5m bar of 19:25
    assert bars_of(out + closing, "BTC-USD") == [datetime(2026, 3, 2, 19, 26, tzinfo=UTC)]
    assert pipeline.flush(partial=False) == []  # nothing left to close twice


def test_a_stop_after_the_window_ended_closes_it():
    clock = Clock(NOW)
    pipeline = MarketDataPipeline(source="test", clock=clock)
    run(pipeline, [trade("BTC-USD", datetime(2026, 3, 2, 19, 27, 5, tzinfo=UTC))])
    clock.now = datetime(2026, 3, 2, 19, 28, 0, tzinfo=UTC)
    closing = pipeline.flush(partial=False)
    assert bars_of(closing, "BTC-USD") == [datetime(2026, 3, 2, 19, 27, tzinfo=UTC)]
    assert pipeline.counts.partial_bars == 5  # only the 5m, 15m, 1h, 4h and 1d windows
