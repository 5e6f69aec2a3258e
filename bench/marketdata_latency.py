"""Latency from a Polygon frame arriving at the client to its trade row being committed.

A local ``FakePolygonServer`` (own thread and event loop) streams one trade per frame at a fixed
rate (default 2,000 messages/s). The client path is the one ``manage.py ingest`` runs,
``marketdata.ingestion.ingest_feed``: ``PolygonCryptoStream`` -> ``MarketDataPipeline``
(``process_batch`` of whatever has arrived) -> ``AsyncBatchWriter`` -> database. For every
trade: receive time (the client's ``last_received_at``, time.monotonic) and the writer's commit
time; the server's ``sent_at`` adds the send -> commit view. Target: p99 < 100 ms.

    .venv/bin/python bench/marketdata_latency.py [--rate 2000] [--seconds 10]
        [--backends sqlite,postgresql] [--flush-interval 0.05] [--batch-size 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    DEFAULT_PG_URL,
    latency_summary,
    print_table,
    setup_django,
    truncate_marketdata,
)


class ServerThread:
    """Run a fake venue on its own event loop so its pacing does not share the client's loop."""

    def __init__(self, server) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)
        return self.server

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class FirstTrades:
    """A feed that ends after ``count`` trades, keeping their receive times in order."""

    def __init__(self, feed, count: int) -> None:
        self.feed = feed
        self.count = count
        self.stats = feed.stats
        self.received: list[float] = []

    @property
    def last_received_at(self) -> float | None:
        return self.feed.last_received_at

    async def events(self):
        from contextlib import aclosing

        from marketdata.engine.events import Trade

        async with aclosing(self.feed.events()) as events:
            async for event in events:
                yield event
                if isinstance(event, Trade):
                    self.received.append(self.feed.last_received_at)
                    done = len(self.received)
                    if done % (self.count // 5 or 1) == 0:
                        print(f"    {done:,} / {self.count:,} trades", flush=True)
                    if done == self.count:
                        return

    async def close(self) -> None:
        await self.feed.close()


async def stream_into_db(url: str, alias: str, count: int, args) -> tuple[list[float], list[float]]:
    """Ingest ``count`` trades as ``manage.py ingest`` does (``ingest_feed``); return (receive
    times, receive->commit latencies) per trade."""
    from marketdata.adapters.polygon import PolygonCryptoStream
    from marketdata.ingestion import ingest_feed
    from marketdata.pipeline import MarketDataPipeline
    from marketdata.storage import AsyncBatchWriter, MarketDataStore

    feed = FirstTrades(PolygonCryptoStream("test-key", ["BTC-USD"], ("XT",), url=url), count)
    pipeline = MarketDataPipeline(source="polygon")
    writer = AsyncBatchWriter(
        MarketDataStore(using=alias),
        batch_size=args.batch_size,
        flush_interval=args.flush_interval,
        clock=time.monotonic,
    ).start()
    # Forwarded events (here: trades only) carry their receive time to the writer.
    await ingest_feed(feed, pipeline, writer, asyncio.Event())
    await feed.close()
    await writer.put_many(pipeline.flush())
    stats = await writer.close()
    return feed.received, list(stats.latencies)


def bench_backend(backend: str, alias: str, args) -> list[list]:
    from marketdata.models import Symbol, TradeTick
    from tests.fakes import FakePolygonServer, Script, trade_frames

    truncate_marketdata(alias)
    Symbol.objects.using(alias).get_or_create(
        name="BTC-USD", defaults={"base": "BTC", "quote": "USD"}
    )
    count = int(args.rate * args.seconds)
    server = FakePolygonServer(Script(frames=trade_frames(count), rate=args.rate))
    print(f"  {backend}: {count:,} frames at {args.rate:,.0f}/s ...", flush=True)
    with ServerThread(server):
        began = time.monotonic()
        received, latencies = asyncio.run(stream_into_db(server.url, alias, count, args))
        elapsed = time.monotonic() - began
        sent = list(server.sent_at)
    stored = TradeTick.objects.using(alias).count()
    assert stored == count and len(latencies) == count, (stored, len(latencies))
    commit = [r + lat for r, lat in zip(received, latencies, strict=True)]
    views = {
        "receive -> commit": latencies,
        "send -> receive": [r - s for r, s in zip(received, sent, strict=True)],
        "send -> commit": [c - s for c, s in zip(commit, sent, strict=True)],
    }
    rows = []
    for view, samples in views.items():
        s = latency_summary(samples)
        rows.append(
            [
                backend,
                view,
                s["count"],
                count / elapsed,
                s["p50"],
                s["p90"],
                s["p99"],
                s["p99.9"],
                s["max"],
            ]
        )
    truncate_marketdata(alias)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=2_000.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--flush-interval", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=5_000)
    args = parser.parse_args()
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    aliases = setup_django(pg_url=args.pg_url if "postgresql" in wanted else None)
    rows = []
    for backend in wanted:
        rows += bench_backend(backend, aliases[backend], args)
    print_table(
        [
            "backend",
            "latency",
            "trades",
            "msg/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
        ],
        rows,
        title=(
            f"Polygon frame -> committed row at {args.rate:,.0f} msg/s "
            f"(writer: batch {args.batch_size:,}, flush every {args.flush_interval * 1000:.0f} ms)"
        ),
    )
    worst = max(r[6] for r in rows if r[1] == "receive -> commit")
    print(
        f"\ntarget p99 < 100 ms (receive -> commit): {'met' if worst < 100 else 'MISSED'} "
        f"(worst p99 {worst:.1f} ms)"
    )


if __name__ == "__main__":
    main()
