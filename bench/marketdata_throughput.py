"""Trades per second through validate -> aggregate -> store, next to raw bulk loads of the rows.

For each backend (SQLite file in WAL mode; PostgreSQL ``rrr_bench``) and in the same run, the same
300,000 trades (five symbols, random walks, 1 ms apart, unique ids), batches of 5,000:

* raw executemany / raw COPY   the trade rows alone: plain ``executemany`` INSERT (SQLite), binary
                               ``COPY`` (PostgreSQL); not idempotent, no validation, no bars
* store.write                  ``MarketDataStore.write(trades)``: idempotent (PostgreSQL: binary
                               COPY straight into the table in a savepoint, ON CONFLICT fallback)
* store.write, rows stored     the same write again when every row is already stored: the
                               fallback path a replay takes (nothing new is inserted)
* process (per trade) + store  ``MarketDataPipeline.process`` (validate, 1s/1m bars, 5m..1d
                               resamples) trade by trade, then ``store.write`` of all it emits
* process_batch + store        the same with ``process_batch`` per batch (bulk validation and
                               aggregation, equal outputs), storing in between, one thread
* ingest                       what ``manage.py ingest`` runs: ``ingest_feed`` (reads the feed,
                               ``process_batch`` of whatever has arrived) into ``AsyncBatchWriter``,
                               whose thread stores batch k while the loop processes batch k+1

Every path stores the same trade rows (checked); the pipeline paths also store the same 1,550
bars and ~10,000 quality findings (the walk's sizes trip the volume-spike rule ~3 % of the time).
Tables are truncated between runs (and a CHECKPOINT taken on PostgreSQL, so a checkpoint
forced by one path's WAL does not land in the next one's timing). Target, on the ``ingest`` row
(the path ``ingest`` uses): >= 100,000 trades/s into PostgreSQL and >= 40 % of raw COPY. The
machine has two cores and PostgreSQL runs on it too, so figures move with other load; compare
with the in-run raw row.

    .venv/bin/python bench/marketdata_throughput.py [--trades 300000] [--batch 5000]
        [--backends sqlite,postgresql] [--pg-url postgres://postgres@127.0.0.1:5432/rrr_bench]
        [--profile process|batch|store|ingest]
"""

from __future__ import annotations

import argparse
import cProfile
import math
import pstats
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    DEFAULT_PG_URL,
    print_table,
    setup_django,
    truncate_marketdata,
)

SYMBOLS = {
    "BTC-USD": 50_000.0,
    "ETH-USD": 3_000.0,
    "SOL-USD": 100.0,
    "MATIC-USD": 0.8,
    "AVAX-USD": 35.0,
}
T0 = datetime(2024, 1, 1, tzinfo=UTC)
TRADE_COLUMNS = ("symbol_id", "venue", "trade_id", "ts", "price", "size", "side")


def make_trades(count: int, seed: int = 7) -> list:
    """Return ``count`` trades over the five symbols: random walks, 1 ms apart, unique ids."""
    from marketdata.engine.events import Side, Trade

    rng = random.Random(seed)
    names = list(SYMBOLS)
    prices = dict(SYMBOLS)
    trades = []
    for n in range(count):
        name = names[n % len(names)]
        prices[name] *= math.exp(rng.gauss(0.0, 2e-4))
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        size = round(rng.expovariate(1.0) + 0.001, 6)
        ts = T0 + timedelta(milliseconds=n)
        trades.append(Trade(name, ts, round(prices[name], 6), size, "bench", str(n), side))
    return trades


def batches(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def ensure_symbols(alias: str) -> dict[str, int]:
    from marketdata.models import Symbol

    ids = {}
    for name in SYMBOLS:
        base, quote = name.split("-")
        symbol, _ = Symbol.objects.using(alias).get_or_create(
            name=name, defaults={"base": base, "quote": quote}
        )
        ids[name] = symbol.pk
    return ids


def raw_rows(trades: Sequence, ids: dict[str, int], vendor: str) -> list[tuple]:
    """The TradeTick rows, in the form each driver loads fastest (SQLite stores text ts)."""
    if vendor == "sqlite":
        fmt = "%Y-%m-%d %H:%M:%S.%f"
        return [
            (ids[t.symbol], t.venue, t.trade_id, t.ts.strftime(fmt), t.price, t.size, t.side.value)
            for t in trades
        ]
    return [
        (ids[t.symbol], t.venue, t.trade_id, t.ts, t.price, t.size, t.side.value) for t in trades
    ]


def run_raw(alias: str, rows: list[tuple], batch: int) -> float:
    """Load rows with plain executemany (SQLite) or COPY (PostgreSQL); return seconds."""
    from django.db import connections

    connection = connections[alias]
    connection.ensure_connection()
    raw = connection.connection
    cols = ", ".join(TRADE_COLUMNS)
    began = time.perf_counter()
    if connection.vendor == "sqlite":
        sql = f"INSERT INTO marketdata_tradetick ({cols}) VALUES ({', '.join('?' * 7)})"
        for chunk in batches(rows, batch):
            raw.execute("BEGIN")
            raw.executemany(sql, chunk)
            raw.execute("COMMIT")
    else:
        with raw.cursor() as cursor:
            cursor.execute(
                "SELECT atttypid FROM pg_attribute"
                " WHERE attrelid = 'marketdata_tradetick'::regclass AND attname = ANY(%s)"
                " ORDER BY array_position(%s, attname::text)",
                [list(TRADE_COLUMNS), list(TRADE_COLUMNS)],
            )
            oids = [r[0] for r in cursor.fetchall()]
            began = time.perf_counter()
            sql = f"COPY marketdata_tradetick ({cols}) FROM STDIN (FORMAT BINARY)"
            for chunk in batches(rows, batch):
                with raw.transaction():
                    with cursor.copy(sql) as copy:
                        copy.set_types(oids)
                        for row in chunk:
                            copy.write_row(row)
    return time.perf_counter() - began


def run_store(alias: str, trades: Sequence, batch: int) -> float:
    """Write trades through MarketDataStore.write; return seconds."""
    from marketdata.storage import MarketDataStore

    store = MarketDataStore(using=alias)
    began = time.perf_counter()
    for chunk in batches(trades, batch):
        store.write(chunk)
    return time.perf_counter() - began


def run_replay(alias: str, trades: Sequence, batch: int) -> float:
    """Write every trade once (untimed), then time writing them all again."""
    run_store(alias, trades, batch)
    return run_store(alias, trades, batch)


def run_pipeline(
    alias: str, trades: Sequence, batch: int, *, bulk: bool = False
) -> tuple[float, float, int]:
    """Validate, aggregate and store every trade; return (seconds, seconds in store, rows).

    ``bulk``: ``process_batch`` per batch instead of ``process`` per trade.
    """
    from marketdata.pipeline import MarketDataPipeline
    from marketdata.storage import MarketDataStore

    clock_now = T0  # a fixed clock: quality records need a timestamp, not wall time
    pipeline = MarketDataPipeline(source="bench", clock=lambda: clock_now)
    store = MarketDataStore(using=alias)
    process = pipeline.process
    in_store, rows = 0.0, 0
    began = time.perf_counter()
    for chunk in batches(trades, batch):
        if bulk:
            out = pipeline.process_batch(chunk)
        else:
            out = [o for trade in chunk for o in process(trade)]
        t = time.perf_counter()
        rows += store.write(out).total_written
        in_store += time.perf_counter() - t
    t = time.perf_counter()
    rows += store.write(pipeline.flush()).total_written
    in_store += time.perf_counter() - t
    return time.perf_counter() - began, in_store, rows


class ReplayFeed:
    """The bench's trades as a feed whose events have all arrived (it never waits)."""

    def __init__(self, events: Sequence) -> None:
        from marketdata.adapters.base import FeedStats

        self._events = events
        self.stats = FeedStats()
        self.last_received_at: float | None = None

    async def events(self):
        for event in self._events:
            yield event

    async def close(self) -> None:
        return None


def run_ingest(alias: str, trades: Sequence, batch: int) -> tuple[float, float, int]:
    """What ``manage.py ingest`` runs: ``ingest_feed`` (batches) into ``AsyncBatchWriter``."""
    import asyncio

    from marketdata.ingestion import ingest_feed
    from marketdata.pipeline import MarketDataPipeline
    from marketdata.storage import AsyncBatchWriter, MarketDataStore

    async def scenario() -> int:
        pipeline = MarketDataPipeline(source="bench", clock=lambda: T0)
        writer = AsyncBatchWriter(MarketDataStore(using=alias), batch_size=batch).start()
        await ingest_feed(ReplayFeed(trades), pipeline, writer, asyncio.Event(), max_batch=batch)
        await writer.put_many(pipeline.flush())
        stats = await writer.close()
        return stats.written

    began = time.perf_counter()
    rows = asyncio.run(scenario())
    return time.perf_counter() - began, math.nan, rows


def fresh_tables(alias: str) -> None:
    """Empty the tables; on PostgreSQL also CHECKPOINT, so no path pays for an earlier one's WAL."""
    from django.db import connections

    truncate_marketdata(alias)
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")


def count_trades(alias: str) -> int:
    from marketdata.models import TradeTick

    return TradeTick.objects.using(alias).count()


def profiled(label: str, fn: Callable[[], object]) -> None:
    profile = cProfile.Profile()
    profile.enable()
    fn()
    profile.disable()
    print(f"\ncProfile of {label} (top 25 by internal time)")
    pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def bench_backend(backend: str, alias: str, trades: Sequence, args) -> list[list]:
    from django.db import connections

    ids = ensure_symbols(alias)
    vendor = connections[alias].vendor
    rows = raw_rows(trades, ids, vendor)
    n = len(trades)
    results = []
    for path, run in (
        (
            "raw " + ("executemany" if vendor == "sqlite" else "COPY"),
            lambda: run_raw(alias, rows, args.batch),
        ),
        ("store.write", lambda: run_store(alias, trades, args.batch)),
        ("store.write, rows stored", lambda: run_replay(alias, trades, args.batch)),
        ("process (per trade) + store", lambda: run_pipeline(alias, trades, args.batch)),
        (
            "process_batch + store",
            lambda: run_pipeline(alias, trades, args.batch, bulk=True),
        ),
        ("ingest", lambda: run_ingest(alias, trades, args.batch)),
    ):
        fresh_tables(alias)
        print(f"  {backend}: {path} ...", flush=True)
        outcome = run()
        seconds = outcome[0] if isinstance(outcome, tuple) else outcome
        stored = count_trades(alias)
        assert stored == n, f"{path} stored {stored} of {n} trades"
        extra = ""
        if isinstance(outcome, tuple) and math.isnan(outcome[1]):
            extra = f"store overlapped on the writer thread; {outcome[2]:,} rows"
        elif isinstance(outcome, tuple):
            extra = f"store {outcome[1] / seconds:.0%} of time; {outcome[2]:,} rows"
        results.append([backend, path, n, seconds, n / seconds, extra])
    raw_rate = results[0][4]
    for row in results:
        row.insert(5, f"{row[4] / raw_rate:.0%}")
    if args.profile:
        truncate_marketdata(alias)
        target = {
            "process": lambda: run_pipeline(alias, trades, args.batch),
            "batch": lambda: run_pipeline(alias, trades, args.batch, bulk=True),
            "store": lambda: run_store(alias, trades, args.batch),
            "ingest": lambda: run_ingest(alias, trades, args.batch),
        }[args.profile]
        profiled(f"{args.profile} on {backend}", target)
    truncate_marketdata(alias)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trades", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--profile", choices=("process", "batch", "store", "ingest"))
    args = parser.parse_args()
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    aliases = setup_django(pg_url=args.pg_url if "postgresql" in wanted else None)
    print(f"generating {args.trades:,} trades over {len(SYMBOLS)} symbols ...", flush=True)
    trades = make_trades(args.trades)
    results = []
    for backend in wanted:
        results += bench_backend(backend, aliases[backend], trades, args)
    print_table(
        ["backend", "path", "trades", "seconds", "trades/s", "vs raw", "notes"],
        results,
        title=f"market-data write throughput, batches of {args.batch:,}",
    )
    pg = [r for r in results if r[0] == "postgresql" and r[1] == "ingest"]
    if pg:
        rate, share = pg[0][4], float(pg[0][5].rstrip("%")) / 100
        verdict = "met" if rate >= 100_000 and share >= 0.40 else "MISSED"
        print(
            f"\ntarget (ingest: >= 100,000 trades/s into PostgreSQL and >= 40 % of raw COPY):"
            f" {verdict} ({rate:,.0f} trades/s, {share:.0%} of raw)"
        )


if __name__ == "__main__":
    main()
