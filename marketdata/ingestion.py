"""The ingest loop shared by ``manage.py ingest`` and the benchmarks: feed → pipeline → writer.

One task reads the feed into a bounded buffer; another takes whatever has arrived as one batch,
runs it through ``MarketDataPipeline.process_batch`` and hands the outputs to the writer as one
chunk. A quiet feed gives batches of one event (no added latency); a busy one gives large
batches, which the pipeline validates and aggregates in bulk and the writer stores while the
next batch is processed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from marketdata.adapters.base import MarketDataFeed
from marketdata.pipeline import MarketDataPipeline

MAX_BATCH = 5_000


class ChunkWriter(Protocol):
    """Where the outputs go (``AsyncBatchWriter``)."""

    async def put_many(
        self, events: Sequence[object], received: Sequence[float | None] | None = None
    ) -> None:
        """Queue a chunk of outputs with their receive times."""
        ...


class FeedBuffer:
    """Events read from a feed and not yet processed, at most ``limit`` of them."""

    def __init__(self, limit: int = MAX_BATCH) -> None:
        self.limit = limit
        self.events: list[object] = []
        self.received: list[float | None] = []
        self.done = False
        self._ready = asyncio.Event()
        self._space = asyncio.Event()

    async def fill(self, feed: MarketDataFeed, stop: asyncio.Event) -> None:
        """Read the feed until it ends or ``stop`` is set; wait while the buffer is full."""
        try:
            async for event in feed.events():
                self.events.append(event)
                self.received.append(feed.last_received_at)
                self._ready.set()
                if stop.is_set():
                    return
                if len(self.events) >= self.limit:
                    self._space.clear()
                    await self._space.wait()
        finally:
            self.done = True
            self._ready.set()

    async def take(self) -> tuple[list[object], list[float | None]]:
        """Return everything buffered (waiting for at least one event); empty when done."""
        while not self.events and not self.done:
            self._ready.clear()
            await self._ready.wait()
        events, received = self.events, self.received
        self.events, self.received = [], []
        self._space.set()
        return events, received


async def ingest_feed(
    feed: MarketDataFeed,
    pipeline: MarketDataPipeline,
    writer: ChunkWriter,
    stop: asyncio.Event,
    *,
    max_batch: int = MAX_BATCH,
    metrics=None,
) -> None:
    """Stream ``feed`` through ``pipeline`` into ``writer`` until the feed ends or ``stop``.

    Forwarded events keep their receive time (the writer's latency samples); bars and quality
    records carry none. Feed errors (e.g. ``FeedAuthError``) propagate.
    """
    buffer = FeedBuffer(max_batch)
    reader = asyncio.create_task(buffer.fill(feed, stop), name="feed-reader")
    try:
        while True:
            events, received = await buffer.take()
            if not events:
                break
            outputs = pipeline.process_batch(events)
            await writer.put_many(outputs, receive_times(outputs, events, received))
            if metrics is not None:  # a monitoring.metrics.FeedMetrics (ingest --metrics-port)
                metrics.received_batch(events, outputs)
                metrics.sync(
                    stored=writer.stats.written_by_symbol if hasattr(writer, "stats") else None,
                    reconnects=getattr(getattr(feed, "stats", None), "reconnects", None),
                )
    finally:
        if not reader.done():
            reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    reader.result()


def receive_times(
    outputs: Sequence[object], events: Sequence[object], received: Sequence[float | None]
) -> list[float | None]:
    """Return each output's receive time: its input's for forwarded events, else None."""
    by_id = {id(e): r for e, r in zip(events, received, strict=True)}
    get = by_id.get
    return [get(id(out)) for out in outputs]
