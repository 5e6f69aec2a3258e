"""Bulk, idempotent storage of market-data events, and the asynchronous batched writer.

PostgreSQL: rows are streamed with ``COPY`` (psycopg 3). Insert-only tables are copied straight
into the table inside a savepoint; only when that hits a stored row (a replay, a reconnect) is the
batch copied into a session-local staging table and moved with ``INSERT … SELECT … ON CONFLICT``,
so replays never duplicate rows. SQLite: ``executemany`` of ``INSERT … ON CONFLICT``. Bars are
upserted (an amended bar replaces the stored one); trades, quotes, books and sentiment readings
are insert-if-absent; quality findings are an append-only log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.db import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
    transaction,
)
from psycopg.errors import UniqueViolation

from marketdata.engine.events import Bar, BookSnapshot, Quote, SentimentReading, Trade
from marketdata.models import Bar as BarRow
from marketdata.models import BookSnapshot as BookRow
from marketdata.models import DataQualityEvent, Symbol
from marketdata.models import Quote as QuoteRow
from marketdata.models import SentimentReading as SentimentRow
from marketdata.models import TradeTick as TradeRow
from marketdata.pipeline import QualityRecord

logger = logging.getLogger(__name__)


class UnknownSymbol(LookupError):
    """An event names a symbol that has no ``Symbol`` row."""


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How one event type maps onto a table: columns, conflict key, and what to do on conflict."""

    table: str
    columns: tuple[str, ...]
    conflict: tuple[str, ...]
    update: tuple[str, ...] = ()  # columns overwritten on conflict (empty: DO NOTHING)
    datetimes: tuple[str, ...] = ("ts",)  # columns SQLite needs adapted from datetime

    def insert_sql(self, placeholder: str) -> str:
        """Return ``INSERT … VALUES (…) ON CONFLICT …`` with the backend's placeholder."""
        cols = ", ".join(self.columns)
        values = ", ".join([placeholder] * len(self.columns))
        return f"INSERT INTO {self.table} ({cols}) VALUES ({values}) {self.on_conflict()}"

    def on_conflict(self) -> str:
        """Return the ON CONFLICT clause (none for append-only tables without a key)."""
        if not self.conflict:
            return ""
        target = ", ".join(self.conflict)
        if not self.update:
            return f"ON CONFLICT ({target}) DO NOTHING"
        sets = ", ".join(f"{c} = excluded.{c}" for c in self.update)
        return f"ON CONFLICT ({target}) DO UPDATE SET {sets}"


BAR_SPEC = TableSpec(
    BarRow._meta.db_table,
    (
        "symbol_id",
        "timeframe",
        "ts",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "vwap",
        "trade_count",
    ),
    ("symbol_id", "timeframe", "ts"),
    ("open", "high", "low", "close", "volume", "vwap", "trade_count"),
)
TRADE_SPEC = TableSpec(
    TradeRow._meta.db_table,
    ("symbol_id", "venue", "trade_id", "ts", "price", "size", "side"),
    ("venue", "symbol_id", "trade_id"),
)
QUOTE_SPEC = TableSpec(
    QuoteRow._meta.db_table,
    ("symbol_id", "venue", "ts", "bid", "bid_size", "ask", "ask_size"),
    ("symbol_id", "venue", "ts"),
)
BOOK_SPEC = TableSpec(
    BookRow._meta.db_table,
    ("symbol_id", "venue", "ts", "sequence", "depth", "bids", "asks"),
    ("symbol_id", "venue", "ts"),
)
SENTIMENT_SPEC = TableSpec(
    SentimentRow._meta.db_table,
    (
        "symbol_id",
        "ts",
        "source",
        "label",
        "score",
        "confidence",
        "bullish_count",
        "bearish_count",
        "sources_count",
    ),
    ("source", "symbol_id", "ts"),
)
# Quality findings are an append-only log: every finding is kept, none is a duplicate.
QUALITY_SPEC = TableSpec(
    DataQualityEvent._meta.db_table,
    ("ts", "event_ts", "symbol_id", "source", "rule", "verdict", "reason", "payload"),
    (),
    datetimes=("ts", "event_ts"),
)


@dataclass(slots=True)
class WriteResult:
    """Rows offered and rows actually inserted/updated per table."""

    offered: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, offered: int, written: int) -> None:
        """Accumulate counts for ``kind``."""
        self.offered[kind] = self.offered.get(kind, 0) + offered
        self.written[kind] = self.written.get(kind, 0) + written

    @property
    def total_written(self) -> int:
        """Return all rows written."""
        return sum(self.written.values())


class MarketDataStore:
    """Writes batches of engine events to the database, idempotently, in one transaction."""

    def __init__(self, using: str = "default") -> None:
        self.using = using
        self._symbol_ids: dict[str, int] = {}
        self._types: dict[tuple[int, str], list[int]] = {}

    # -- symbols -----------------------------------------------------------------------------
    def symbol_id(self, name: str) -> int:
        """Return the id of symbol ``name`` (cached); raise UnknownSymbol if it does not exist."""
        try:
            return self._symbol_ids[name]
        except KeyError:
            pass
        pk = Symbol.objects.using(self.using).filter(name=name).values_list("pk", flat=True).first()
        if pk is None:
            raise UnknownSymbol(name)
        self._symbol_ids[name] = pk
        return pk

    # -- rows ------------------------------------------------------------------------------
    def _bar_rows(self, bars: Iterable[Bar]) -> list[tuple]:
        rows = {}
        for b in bars:  # the last version of a bar in a batch wins (amendments)
            key = (self.symbol_id(b.symbol), b.timeframe, b.ts)
            rows[key] = (*key, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count)
        return list(rows.values())

    def _trade_rows(self, trades: Iterable[Trade]) -> list[tuple]:
        sid = self.symbol_id
        rows = {}
        for t in trades:
            side = t.side.value if t.side is not None else ""
            trade_id = t.trade_id or f"{t.ts.timestamp():.6f}:{t.price}:{t.size}"
            key = (sid(t.symbol), t.venue, trade_id)
            rows[key] = (*key, t.ts, t.price, t.size, side)
        return list(rows.values())

    def _quote_rows(self, quotes: Iterable[Quote]) -> list[tuple]:
        rows = {}
        for q in quotes:
            key = (self.symbol_id(q.symbol), q.venue, q.ts)
            rows[key] = (*key, q.bid, q.bid_size, q.ask, q.ask_size)
        return list(rows.values())

    def _book_rows(self, books: Iterable[BookSnapshot]) -> list[tuple]:
        rows = {}
        for b in books:
            key = (self.symbol_id(b.symbol), b.venue, b.ts)
            depth = max(len(b.bids), len(b.asks))
            rows[key] = (
                *key,
                b.sequence,
                depth,
                json.dumps([list(x) for x in b.bids]),
                json.dumps([list(x) for x in b.asks]),
            )
        return list(rows.values())

    def _sentiment_rows(self, readings: Iterable[SentimentReading]) -> list[tuple]:
        rows = {}
        for r in readings:
            key = (self.symbol_id(r.symbol) if r.symbol else None, r.ts, r.source)
            rows[(key[2], key[0], key[1])] = (
                *key,
                r.label,
                r.score,
                r.confidence,
                r.bullish,
                r.bearish,
                r.sources,
            )
        return list(rows.values())

    # -- writing ---------------------------------------------------------------------------
    def write(self, events: Sequence[object]) -> WriteResult:
        """Write a mixed batch of events in one transaction; return per-table counts."""
        groups: dict[type, list] = {}
        for event in events:
            groups.setdefault(type(event), []).append(event)
        plan = [
            ("bars", BAR_SPEC, self._bar_rows, groups.get(Bar)),
            ("trades", TRADE_SPEC, self._trade_rows, groups.get(Trade)),
            ("quotes", QUOTE_SPEC, self._quote_rows, groups.get(Quote)),
            ("books", BOOK_SPEC, self._book_rows, groups.get(BookSnapshot)),
            ("sentiment", SENTIMENT_SPEC, self._sentiment_rows, groups.get(SentimentReading)),
            ("quality", QUALITY_SPEC, self._quality_rows, groups.get(QualityRecord)),
        ]
        result = WriteResult()
        with transaction.atomic(using=self.using):
            for kind, spec, to_rows, batch in plan:
                if batch:
                    rows = to_rows(batch)
                    result.add(kind, len(batch), self.write_rows(spec, rows))
        return result

    def _quality_rows(self, records: Iterable[QualityRecord]) -> list[tuple]:
        """Rows of ``DataQualityEvent`` (symbol left empty when unknown, payload as JSON)."""
        rows = []
        for r in records:
            try:
                sid = self.symbol_id(r.symbol) if r.symbol else None
            except UnknownSymbol:
                sid = None
            payload = json.dumps(r.payload)
            rows.append(
                (r.ts, r.event_ts, sid, r.source, r.rule, r.verdict, r.reason[:2000], payload)
            )
        return rows

    def write_rows(self, spec: TableSpec, rows: list[tuple]) -> int:
        """Insert ``rows`` (already in ``spec.columns`` order); return rows inserted/updated."""
        if not rows:
            return 0
        connection = connections[self.using]
        if connection.vendor == "postgresql":
            return self._copy_rows(spec, rows)
        adapt = connection.ops.adapt_datetimefield_value
        for i in [i for i, c in enumerate(spec.columns) if c in spec.datetimes]:
            rows = [(*r[:i], adapt(r[i]), *r[i + 1 :]) for r in rows]
        with connection.cursor() as cursor:
            before = connection.connection.total_changes
            cursor.executemany(spec.insert_sql("%s"), rows)
            return connection.connection.total_changes - before

    def _copy_rows(self, spec: TableSpec, rows: list[tuple]) -> int:
        """COPY ``rows`` into ``spec.table`` idempotently; return rows inserted/updated.

        Insert-only tables first try a plain COPY straight into the table inside a savepoint:
        with no row already stored (the live case) that is all the work. A unique violation (a
        replay, a reconnect, a concurrent writer) rolls back to the savepoint and the batch goes
        through the staging table with ``INSERT … SELECT … ON CONFLICT``, which upserting tables
        (bars) always use. The market-data transaction commits without waiting for the WAL
        flush: a database crash can lose the last fraction of a second of market data, which a
        backfill restores; orders and fills are written elsewhere with full durability.
        """
        connection = connections[self.using]
        with connection.cursor() as cursor, connection.wrap_database_errors:
            raw = cursor.cursor
            raw.execute("SET LOCAL synchronous_commit TO OFF")
            if not spec.update:
                raw.execute("SAVEPOINT md_copy")
                try:
                    self._copy(raw, spec.table, spec.columns, rows)
                except UniqueViolation:
                    raw.execute("ROLLBACK TO SAVEPOINT md_copy")
                else:
                    raw.execute("RELEASE SAVEPOINT md_copy")
                    return len(rows)
            return self._copy_staged(raw, spec, rows)

    def _copy_staged(self, raw, spec: TableSpec, rows: list[tuple]) -> int:
        """COPY into a session-local staging table, then INSERT … SELECT … ON CONFLICT."""
        stage = f"_stage_{spec.table}"
        cols = ", ".join(spec.columns)
        raw.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} AS "
            f"SELECT {cols} FROM {spec.table} WITH NO DATA"
        )
        raw.execute(f"TRUNCATE {stage}")
        self._copy(raw, stage, spec.columns, rows)
        raw.execute(
            f"INSERT INTO {spec.table} ({cols}) SELECT {cols} FROM {stage} {spec.on_conflict()}"
        )
        return raw.rowcount

    def _copy(self, raw, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        """COPY rows into table: binary (types read once per table), text for JSON columns."""
        cols = ", ".join(columns)
        types = self._column_types(raw, table, cols)
        binary = "json" not in self._json_probe(types)
        fmt = " (FORMAT BINARY)" if binary else ""
        with raw.copy(f"COPY {table} ({cols}) FROM STDIN{fmt}") as copy:
            if binary:
                copy.set_types(types)
            write_row = copy.write_row
            for row in rows:
                write_row(row)

    def _column_types(self, raw, table: str, cols: str) -> list[int]:
        """Return the type OIDs of ``cols`` of ``table`` (cached per connection)."""
        key = (id(raw.connection), table)
        types = self._types.get(key)
        if types is None:
            raw.execute(f"SELECT {cols} FROM {table} LIMIT 0")
            types = self._types[key] = [d.type_code for d in raw.description]
        return types

    @staticmethod
    def _json_probe(types: list[int]) -> str:
        """Return "json" when a column is json/jsonb (OIDs 114/3802): those COPY as text."""
        return "json" if {114, 3802} & set(types) else ""


@dataclass(slots=True)
class WriterStats:
    """Counters and commit latencies of the batched writer."""

    queued: int = 0
    batches: int = 0
    offered: int = 0
    written: int = 0
    rejected: int = 0
    retries: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, received → committed


class AsyncBatchWriter:
    """Bounded queue in front of ``MarketDataStore``: batches by size or time, writes off-loop.

    ``put`` waits when the queue is full (back-pressure instead of loss). Database work runs on a
    single dedicated thread so it keeps one connection. Nothing is dropped silently: a database
    outage is retried with back-off (the bounded queue then pushes back on the feed), and a batch
    that fails on its data is bisected until the offending events are isolated; those go to
    ``on_reject`` (the caller quarantines them) and are counted in ``stats.rejected``.
    """

    def __init__(
        self,
        store: MarketDataStore | None = None,
        *,
        max_queue: int = 100_000,
        batch_size: int = 5_000,
        flush_interval: float = 0.05,
        clock: Callable[[], float] = time.perf_counter,
        on_commit: Callable[[WriteResult], None] | None = None,
        on_reject: Callable[[object, str], None] | None = None,
        retry_delays: Sequence[float] = (0.1, 0.5, 1.0, 2.0, 5.0),
    ) -> None:
        self.store = store or MarketDataStore()
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=max_queue)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.clock = clock
        self.on_commit = on_commit
        self.on_reject = on_reject
        self.retry_delays = tuple(retry_delays)
        self.stats = WriterStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="md-writer")
        self._task: asyncio.Task | None = None
        self._closing = False

    def start(self) -> AsyncBatchWriter:
        """Start the background flushing task."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="md-writer")
        return self

    async def put(self, event: object, received_at: float | None = None) -> None:
        """Queue an event; waits while the queue is full."""
        await self.queue.put((event, received_at))
        self.stats.queued += 1

    async def close(self) -> WriterStats:
        """Flush everything queued, stop the task and release the thread's connection."""
        self._closing = True
        await self.queue.put(None)
        if self._task is not None:
            await self._task
        await asyncio.get_running_loop().run_in_executor(self._executor, _close_thread_db)
        self._executor.shutdown(wait=True)
        return self.stats

    async def _next_batch(self) -> tuple[list, list[float], bool]:
        """Collect up to ``batch_size`` items or whatever arrives within ``flush_interval``."""
        events, received, done = [], [], False
        item = await self.queue.get()
        deadline = self.clock() + self.flush_interval
        while True:
            if item is None:
                done = True
                break
            events.append(item[0])
            if item[1] is not None:
                received.append(item[1])
            if len(events) >= self.batch_size:
                break
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - self.clock()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), remaining)
                except TimeoutError:
                    break
        return events, received, done

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        done = False
        while not done:
            events, received, done = await self._next_batch()
            if not events:
                continue
            result = await self._write_with_retry(loop, events)
            committed = self.clock()
            self.stats.batches += 1
            self.stats.offered += len(events)
            self.stats.written += result.total_written
            self.stats.latencies.extend(committed - r for r in received)
            if self.on_commit is not None:
                self.on_commit(result)

    async def _write_with_retry(self, loop, events: list) -> WriteResult:
        """Write, retrying transient database errors with back-off (forever, last delay repeats)."""
        attempt = 0
        while True:
            try:
                return await loop.run_in_executor(self._executor, self._write_isolating, events)
            except (OperationalError, InterfaceError) as exc:
                delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
                self.stats.retries += 1
                attempt += 1
                logger.warning("market-data write failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    def _write_isolating(self, events: list) -> WriteResult:
        """Write ``events``; on a data error, bisect to isolate and reject the bad events."""
        close_old_connections()
        try:
            return self.store.write(events)
        except (IntegrityError, DataError, UnknownSymbol, ValueError, TypeError) as exc:
            if len(events) == 1:
                self.stats.rejected += 1
                logger.warning("market-data event rejected by storage: %s", exc)
                if self.on_reject is not None:
                    self.on_reject(events[0], f"{type(exc).__name__}: {exc}")
                return WriteResult()
        middle = len(events) // 2
        result = self._write_isolating(events[:middle])
        tail = self._write_isolating(events[middle:])
        for kind, count in tail.offered.items():
            result.add(kind, count, tail.written.get(kind, 0))
        return result


def _close_thread_db() -> None:
    """Close this thread's database connections."""
    connections.close_all()
