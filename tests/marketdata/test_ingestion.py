"""The ingest loop: batches of whatever has arrived, the same outputs as one event at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from marketdata.adapters.base import FeedAuthError, FeedStats
from marketdata.engine.events import Trade
from marketdata.ingestion import ingest_feed
from marketdata.pipeline import MarketDataPipeline
from tests.marketdata.streams import T0, faulty_trades

pytestmark = pytest.mark.timeout(30)


class ListFeed:
    """Yield events with receive time = their index; optionally pause after each or fail."""

    def __init__(self, events: list, pause: float | None = None, error: Exception | None = None):
        self._events = events
        self.pause = pause
        self.error = error
        self.stats = FeedStats()
        self.last_received_at: float | None = None

    async def events(self):
        for i, event in enumerate(self._events):
            self.last_received_at = float(i)
            yield event
            if self.pause is not None:
                await asyncio.sleep(self.pause)
        if self.error is not None:
            raise self.error

    async def close(self) -> None:
        return None


class ChunkCollector:
    """A writer that keeps the chunks it is given."""

    def __init__(self) -> None:
        self.chunks: list[tuple[list, list]] = []

    async def put_many(self, events: Sequence[object], received=None) -> None:
        self.chunks.append((list(events), list(received or [None] * len(events))))


def pipeline_at_t0() -> MarketDataPipeline:
    return MarketDataPipeline(source="test", clock=lambda: T0)


def run(feed: ListFeed, *, max_batch: int = 5_000, stop: asyncio.Event | None = None):
    pipeline = pipeline_at_t0()
    writer = ChunkCollector()

    async def scenario() -> None:
        await ingest_feed(feed, pipeline, writer, stop or asyncio.Event(), max_batch=max_batch)

    asyncio.run(scenario())
    return pipeline, writer


def test_a_busy_feed_is_processed_in_batches_with_the_outputs_of_one_by_one():
    trades = faulty_trades(1, 3_000, {"volume": 0.02, "duplicate": 0.01})
    pipeline, writer = run(ListFeed(trades), max_batch=700)
    reference = pipeline_at_t0()
    expected = [out for t in trades for out in reference.process(t)]
    assert [out for chunk, _ in writer.chunks for out in chunk] == expected
    assert pipeline.counts == reference.counts
    assert len(writer.chunks) == 5  # the reader never waits: full batches of 700, then the rest
    index = {id(t): float(i) for i, t in enumerate(trades)}
    for chunk, received in writer.chunks:
        assert received == [index.get(id(out)) for out in chunk]
        assert {type(o) for o, r in zip(chunk, received, strict=True) if r is None} <= {
            type(o) for o in chunk if not isinstance(o, Trade)
        }


def test_a_quiet_feed_is_processed_event_by_event():
    trades = faulty_trades(2, 12, {})
    _, writer = run(ListFeed(trades, pause=0.01))
    assert [len([o for o in chunk if isinstance(o, Trade)]) for chunk, _ in writer.chunks] == [
        1
    ] * 12


def test_a_feed_error_propagates_after_the_events_before_it_are_processed():
    trades = faulty_trades(3, 50, {})
    with pytest.raises(FeedAuthError):
        run(ListFeed(trades, error=FeedAuthError("rejected")))


def test_stop_ends_the_loop_after_the_current_event():
    trades = faulty_trades(4, 100, {})
    stop = asyncio.Event()

    class StopAt(ListFeed):
        async def events(self):
            async for event in super().events():
                if self.last_received_at == 9.0:
                    stop.set()
                yield event

    pipeline, _ = run(StopAt(trades, pause=0.001), stop=stop)
    assert pipeline.counts.received == 10
