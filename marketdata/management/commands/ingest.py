"""``manage.py ingest``: stream a feed into the database (validated, aggregated) without trading."""

from __future__ import annotations

import asyncio
import signal
import time

from django.core.management.base import BaseCommand, CommandError

from marketdata.adapters.base import FeedAuthError, FeedError
from marketdata.feeds import LIVE_SOURCES, build_feed
from marketdata.ingestion import ingest_feed
from marketdata.pipeline import MarketDataPipeline
from marketdata.selectors import feed_config
from marketdata.services import quality_event_record_rejected, symbols_ensure
from marketdata.storage import AsyncBatchWriter


def parse_symbols(raw: str) -> list[str]:
    """Split ``BTC-USD,ETH-USD`` into names."""
    names = [s.strip().upper() for s in raw.split(",") if s.strip()]
    if not names:
        raise CommandError("--symbols needs at least one symbol, e.g. BTC-USD,ETH-USD")
    return names


def feed_for_command(source: str, symbols: list[str], options: dict):
    """Create missing symbols and build the feed for a command; bad input is a CommandError."""
    try:
        symbols_ensure(symbols)
        return build_feed(
            source,
            symbols,
            feed_config(),
            url=options["url"],
            api_key=options["api_key"],
            speed=options["speed"],
            seed=options["seed"],
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


class Command(BaseCommand):
    help = "Stream market data into the database; prints counts when stopped or after --duration."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--source", choices=LIVE_SOURCES, default="sim")
        parser.add_argument("--symbols", default="BTC-USD,ETH-USD")
        parser.add_argument("--url", help="Override the source's WebSocket URL")
        parser.add_argument("--api-key", help="Override the source's API key (Polygon)")
        parser.add_argument("--duration", type=float, help="Stop after this many seconds")
        parser.add_argument(
            "--speed",
            type=float,
            default=1.0,
            help="Simulated market speed multiplier (0 = as fast as possible)",
        )
        parser.add_argument("--seed", type=int, default=42)

    def handle(self, *args, **options) -> None:
        symbols = parse_symbols(options["symbols"])
        feed = feed_for_command(options["source"], symbols, options)
        pipeline = MarketDataPipeline(source=options["source"])
        try:
            counts = asyncio.run(self._run(feed, pipeline, options["duration"]))
        except FeedAuthError as exc:
            raise CommandError(f"authentication failed: {exc}") from exc
        except FeedError as exc:
            raise CommandError(f"feed failed: {exc}") from exc
        self.stdout.write(" ".join(f"{k}={v}" for k, v in counts.items()))

    async def _run(self, feed, pipeline: MarketDataPipeline, duration: float | None) -> dict:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        source = pipeline.source
        writer = AsyncBatchWriter(
            clock=time.monotonic,
            on_reject=lambda event, why: quality_event_record_rejected(
                event=event, reason=why, source=source
            ),
        ).start()
        consumer = asyncio.create_task(ingest_feed(feed, pipeline, writer, stop))
        waiters = [consumer, asyncio.create_task(stop.wait())]
        timeout = duration if duration and duration > 0 else None
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.set()
            await feed.close()
            await asyncio.wait(waiters, timeout=10)
            await writer.put_many(pipeline.flush())
            stats = await writer.close()
        if consumer.done() and consumer.exception() is not None:
            raise consumer.exception()
        counts = pipeline.counts.as_dict()
        return {
            **counts,
            "stored": stats.written,
            "rejected_by_storage": stats.rejected,
            "reconnects": getattr(feed.stats, "reconnects", 0),
        }
