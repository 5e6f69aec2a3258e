"""The pipeline's per-symbol caches stop growing within minutes of market time, not hours.

Closed bars stay amendable for ``AMEND_SECONDS`` whatever the timeframe: a horizon of 600
windows kept 10 hours of 1m bars per symbol, a cache a 60-minute soak at speed 10 was still
filling. Trades later than that are kept in the aggregator's bounded ``late`` buffer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from marketdata.engine.events import Bar, Side, Trade
from marketdata.pipeline import AMEND_SECONDS, MarketDataPipeline

T0 = datetime(2024, 3, 1, tzinfo=UTC)
SYMBOLS = ("BTC-USD", "ETH-USD")


def trade(symbol: str, ts: datetime, n: int) -> Trade:
    return Trade(symbol, ts, 100.0 + (n % 5) * 0.01, 1.0, "sim", str(n), Side.BUY)


def fed_pipeline(hours: float) -> tuple[MarketDataPipeline, datetime, int]:
    """Return a pipeline fed one trade per symbol every 2 s for ``hours``, the end time and n."""
    pipeline = MarketDataPipeline(source="sim", symbols=SYMBOLS)
    ts, n = T0, 0
    while ts < T0 + timedelta(hours=hours):
        n += 1
        for symbol in SYMBOLS:
            pipeline.process(trade(symbol, ts, n))
        ts += timedelta(seconds=2)
    return pipeline, ts, n


def amendable(pipeline: MarketDataPipeline, timeframe: str) -> dict[str, int]:
    (aggregator,) = [a for a in pipeline.aggregators if a.timeframe == timeframe]
    return {symbol: len(history) for symbol, history in aggregator._closed.items()}


def test_amendable_bars_are_bounded_by_market_time_for_every_timeframe() -> None:
    pipeline, _, _ = fed_pipeline(hours=3)
    minutes = AMEND_SECONDS // 60
    assert amendable(pipeline, "1m") == dict.fromkeys(SYMBOLS, minutes + 1)
    # One bar every 2 s: half of the 1s windows have a bar.
    assert amendable(pipeline, "1s") == dict.fromkeys(SYMBOLS, AMEND_SECONDS // 2 + 1)


def test_a_late_trade_inside_the_horizon_amends_and_one_beyond_is_kept() -> None:
    pipeline, end, n = fed_pipeline(hours=1)
    late = trade("BTC-USD", end - timedelta(minutes=5), n + 1)
    amended = [o for o in pipeline.process(late) if isinstance(o, Bar) and o.amended]
    assert [b.timeframe for b in amended] == ["1s", "1m"]
    assert amended[1].ts == (end - timedelta(minutes=5)).replace(second=0)
    older = trade("BTC-USD", end - timedelta(minutes=30), n + 2)
    assert not [o for o in pipeline.process(older) if isinstance(o, Bar)]
    for aggregator in pipeline.aggregators:
        assert list(aggregator.late) == [older] and aggregator.stats.late_kept == 1
