"""Bulk, idempotent storage of market-data events, and the asynchronous batched writer.

PostgreSQL (psycopg 3): a large batch of trades is copied straight into the table inside a
savepoint; only when that hits a stored row (a replay, a reconnect) do the rows go through
``INSERT … SELECT FROM unnest(…) ON CONFLICT``, which small batches and upserts always use, so
replays never duplicate rows. SQLite: ``executemany`` of ``INSERT … ON CONFLICT``. Bars are
upserted (an amended bar replaces the stored one); trades, quotes, books and sentiment readings
are insert-if-absent; quality findings are an append-only log (copied).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
from django.db import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
    transaction,
)
from psycopg.copy import QueuedLibpqWriter
from psycopg.errors import UniqueViolation

from marketdata.engine.events import Bar, BookSnapshot, Quote, SentimentReading, Side, Trade
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


class SymbolNotCached(LookupError):
    """A symbol whose id the store has not looked up yet (``prepare(cached_only=True)``)."""


class WriterFailed(RuntimeError):
    """The market-data writer stopped on an error it could not retry; nothing more is stored."""


SymbolLookup = Callable[[str], int]
SYMBOL_MAX_LENGTH = Symbol._meta.get_field("name").max_length
_SIDES = {Side.BUY: "buy", Side.SELL: "sell", None: ""}
SIMULATED_VENUE = "sim"  # the simulated market's venue: its bars are stored as simulated


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How one event type maps onto a table: columns, conflict key, and what to do on conflict."""

    table: str
    columns: tuple[str, ...]
    conflict: tuple[str, ...]
    update: tuple[str, ...] = ()  # columns overwritten on conflict (empty: DO NOTHING)
    datetimes: tuple[str, ...] = ("ts",)  # columns SQLite needs adapted from datetime
    # DO NOTHING on any unique key, not only ``conflict``: a table whose rows with a NULL in the
    # key have a second, partial unique key (market-wide sentiment) skips replays of those too.
    any_key: bool = False

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
            return (
                "ON CONFLICT DO NOTHING" if self.any_key else f"ON CONFLICT ({target}) DO NOTHING"
            )
        sets = ", ".join(f"{c} = excluded.{c}" for c in self.update)
        # A replay of an identical row changes nothing and is not counted as written.
        changed = " OR ".join(
            f"{self.table}.{c} IS DISTINCT FROM excluded.{c}" for c in self.update
        )
        return f"ON CONFLICT ({target}) DO UPDATE SET {sets} WHERE {changed}"


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
        "simulated",
    ),
    # Simulated bars have their own key, so they can never replace a venue's bar (nor it them).
    ("symbol_id", "timeframe", "simulated", "ts"),
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
    any_key=True,  # market-wide readings (no symbol) have their own key on (source, ts)
)
# Quality findings are an append-only log: every finding is kept, none is a duplicate.
QUALITY_SPEC = TableSpec(
    DataQualityEvent._meta.db_table,
    ("ts", "event_ts", "symbol_id", "source", "rule", "verdict", "reason", "payload"),
    (),
    datetimes=("ts", "event_ts"),
)
TABLE_ORDER = ("bars", "trades", "quotes", "books", "sentiment", "quality")
# Tables of market data proper, counted per symbol (quality findings are a log about them).
MARKET_DATA_KINDS = frozenset(TABLE_ORDER) - {"quality"}
SymbolCounts = dict[int | None, int]  # symbol id (None: no symbol) -> rows
# On PostgreSQL, batches at least this large go by COPY; smaller ones (and upserts) by one INSERT.
COPY_MIN_ROWS = 1_000
_ARRAY_TYPES = {
    "double precision": float,
    "boolean": bool,
    "bigint": int,
    "integer": int,
    "smallint": int,
    "character varying": str,
    "text": str,
}


@dataclass(frozen=True, slots=True)
class PreparedRows:
    """The rows of a batch of events per table: kind -> (spec, rows, events offered).

    Rows of tables with a unique key are a dict by key, so merging batches keeps the last row of
    a key (an amended bar replaces the earlier one), as one write of all their events would.
    """

    events: Sequence[object]
    tables: dict[str, tuple[TableSpec, dict[tuple, tuple] | list[tuple], int]]


def _merged(batches: Sequence[PreparedRows]) -> dict[str, tuple]:
    """Combine prepared batches table by table, in order, without changing them."""
    if len(batches) == 1:
        return batches[0].tables
    merged: dict[str, tuple] = {}
    for batch in batches:
        for kind, (spec, rows, offered) in batch.tables.items():
            if kind not in merged:
                merged[kind] = (spec, rows.copy(), offered)
                continue
            _, into, count = merged[kind]
            if isinstance(into, dict):
                into.update(rows)
            else:
                into.extend(rows)
            merged[kind] = (spec, into, count + offered)
    order = {kind: i for i, kind in enumerate(TABLE_ORDER)}
    return dict(sorted(merged.items(), key=lambda item: order[item[0]]))


@dataclass(slots=True)
class WriteResult:
    """Rows offered and rows actually inserted/updated per table, and market-data rows written
    per symbol name (a row a conflict skipped, a replay, is in neither)."""

    offered: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    by_symbol: dict[str, int] = field(default_factory=dict)

    def add(
        self, kind: str, offered: int, written: int, by_symbol: dict[str, int] | None = None
    ) -> None:
        """Accumulate counts for ``kind`` (and its rows written per symbol)."""
        self.offered[kind] = self.offered.get(kind, 0) + offered
        self.written[kind] = self.written.get(kind, 0) + written
        for symbol, count in (by_symbol or {}).items():
            self.by_symbol[symbol] = self.by_symbol.get(symbol, 0) + count

    def merge(self, other: WriteResult) -> None:
        """Add ``other``'s counts to these."""
        for kind, count in other.offered.items():
            self.add(kind, count, other.written.get(kind, 0))
        for symbol, count in other.by_symbol.items():
            self.by_symbol[symbol] = self.by_symbol.get(symbol, 0) + count

    @property
    def total_written(self) -> int:
        """Return all rows written."""
        return sum(self.written.values())


class MarketDataStore:
    """Writes batches of engine events to the database, idempotently, in one transaction."""

    def __init__(self, using: str = "default") -> None:
        self.using = using
        self._symbol_ids: dict[str, int] = {}
        self._symbol_names: dict[int, str] = {}
        self._types: dict[tuple[int, str], tuple[list[str], list[int]]] = {}

    # -- symbols -----------------------------------------------------------------------------
    def symbol_id(self, name: str) -> int:
        """Return the id of symbol ``name`` (cached); raise UnknownSymbol if it does not exist."""
        try:
            return self._symbol_ids[name]
        except KeyError:
            pass
        if not isinstance(name, str) or not name.isprintable() or len(name) > SYMBOL_MAX_LENGTH:
            # No such Symbol can exist; PostgreSQL would even refuse the query (NUL in text).
            raise UnknownSymbol(repr(name)[:80])
        pk = Symbol.objects.using(self.using).filter(name=name).values_list("pk", flat=True).first()
        if pk is None:
            raise UnknownSymbol(name)
        self._symbol_ids[name] = pk
        return pk

    def _cached_symbol_id(self, name: str) -> int:
        """Return the cached id of ``name``; never query (safe off the writer's thread)."""
        try:
            return self._symbol_ids[name]
        except KeyError:
            raise SymbolNotCached(name) from None

    # -- rows: per table, keyed by the unique key where there is one (the last event wins) --------
    @staticmethod
    def _bar_rows(bars: Iterable[Bar], sid: SymbolLookup) -> dict[tuple, tuple]:
        rows = {}
        for b in bars:  # the last version of a bar in a batch wins (amendments)
            simulated = b.venue == SIMULATED_VENUE
            key = (sid(b.symbol), b.timeframe, simulated, b.ts)
            rows[key] = (
                key[0],
                b.timeframe,
                b.ts,
                b.open,
                b.high,
                b.low,
                b.close,
                b.volume,
                b.vwap,
                b.trade_count,
                simulated,
            )
        return rows

    @staticmethod
    def _trade_rows(trades: Sequence[Trade], sid: SymbolLookup) -> dict[tuple, tuple]:
        ids = {name: sid(name) for name in {t.symbol for t in trades}}
        symbol = [ids[t.symbol] for t in trades]
        venue = [t.venue for t in trades]
        trade_id = [t.trade_id or f"{t.ts.timestamp():.6f}:{t.price}:{t.size}" for t in trades]
        side = [_SIDES[t.side] for t in trades]
        ts = [t.ts for t in trades]
        price, size = [t.price for t in trades], [t.size for t in trades]
        rows = zip(symbol, venue, trade_id, ts, price, size, side, strict=True)
        return dict(zip(zip(symbol, venue, trade_id, strict=True), rows, strict=True))

    @staticmethod
    def _quote_rows(quotes: Iterable[Quote], sid: SymbolLookup) -> dict[tuple, tuple]:
        rows = {}
        for q in quotes:
            key = (sid(q.symbol), q.venue, q.ts)
            rows[key] = (*key, q.bid, q.bid_size, q.ask, q.ask_size)
        return rows

    @staticmethod
    def _book_rows(books: Iterable[BookSnapshot], sid: SymbolLookup) -> dict[tuple, tuple]:
        rows = {}
        for b in books:
            key = (sid(b.symbol), b.venue, b.ts)
            depth = max(len(b.bids), len(b.asks))
            rows[key] = (
                *key,
                b.sequence,
                depth,
                json.dumps([list(x) for x in b.bids]),
                json.dumps([list(x) for x in b.asks]),
            )
        return rows

    @staticmethod
    def _sentiment_rows(
        readings: Iterable[SentimentReading], sid: SymbolLookup
    ) -> dict[tuple, tuple]:
        rows = {}
        for r in readings:
            key = (sid(r.symbol) if r.symbol else None, r.ts, r.source)
            rows[key] = (*key, r.label, r.score, r.confidence, r.bullish, r.bearish, r.sources)
        return rows

    @staticmethod
    def _quality_rows(records: Iterable[QualityRecord], sid: SymbolLookup) -> list[tuple]:
        """Rows of ``DataQualityEvent`` (symbol left empty when unknown, payload as JSON)."""
        rows = []
        for r in records:
            try:
                symbol_id = sid(r.symbol) if r.symbol else None
            except UnknownSymbol:
                symbol_id = None
            payload = json.dumps(r.payload)
            rows.append(
                (r.ts, r.event_ts, symbol_id, r.source, r.rule, r.verdict, r.reason[:2000], payload)
            )
        return rows

    # -- writing ---------------------------------------------------------------------------
    def prepare(self, events: Sequence[object], *, cached_only: bool = False) -> PreparedRows:
        """Build the rows of a mixed batch of events, per table, without touching the database.

        ``cached_only``: raise ``SymbolNotCached`` instead of looking a symbol up, so the rows
        can be built on a thread that must not query (the event loop).
        """
        sid = self._cached_symbol_id if cached_only else self.symbol_id
        groups: dict[type, list] = {}
        for event in events:
            groups.setdefault(type(event), []).append(event)
        plan = (
            ("bars", BAR_SPEC, self._bar_rows, groups.get(Bar)),
            ("trades", TRADE_SPEC, self._trade_rows, groups.get(Trade)),
            ("quotes", QUOTE_SPEC, self._quote_rows, groups.get(Quote)),
            ("books", BOOK_SPEC, self._book_rows, groups.get(BookSnapshot)),
            ("sentiment", SENTIMENT_SPEC, self._sentiment_rows, groups.get(SentimentReading)),
            ("quality", QUALITY_SPEC, self._quality_rows, groups.get(QualityRecord)),
        )
        tables = {
            kind: (spec, to_rows(batch, sid), len(batch))
            for kind, spec, to_rows, batch in plan
            if batch
        }
        return PreparedRows(events, tables)

    def write(self, events: Sequence[object]) -> WriteResult:
        """Write a mixed batch of events in one transaction; return per-table counts."""
        return self.write_prepared([self.prepare(events)])

    def write_prepared(self, batches: Sequence[PreparedRows]) -> WriteResult:
        """Write prepared batches, in order, in one transaction; return per-table counts.

        On PostgreSQL the market-data transaction commits without waiting for the WAL flush: a
        database crash can lose the last fraction of a second of market data, which a backfill
        restores; orders and fills are written elsewhere with full durability.
        """
        result = WriteResult()
        connection = connections[self.using]
        with transaction.atomic(using=self.using):
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            for kind, (spec, rows, offered) in _merged(batches).items():
                rows = list(rows.values()) if isinstance(rows, dict) else rows
                counts = self.write_rows_by_symbol(spec, rows)
                written = sum(counts.values())
                if kind in MARKET_DATA_KINDS:
                    result.add(kind, offered, written, self._named(counts))
                else:
                    result.add(kind, offered, written)
        return result

    def _named(self, counts: SymbolCounts) -> dict[str, int]:
        """Return per-symbol-id counts by symbol name ("" for rows of no symbol)."""
        names = self._symbol_names
        if len(names) != len(self._symbol_ids):
            names = self._symbol_names = {pk: name for name, pk in self._symbol_ids.items()}
        return {("" if pk is None else names.get(pk, str(pk))): n for pk, n in counts.items() if n}

    def write_rows(self, spec: TableSpec, rows: list[tuple]) -> int:
        """Insert ``rows`` (already in ``spec.columns`` order); return rows inserted/updated."""
        return sum(self.write_rows_by_symbol(spec, rows).values())

    def write_rows_by_symbol(self, spec: TableSpec, rows: list[tuple]) -> SymbolCounts:
        """Insert ``rows``; return the rows inserted/updated per symbol id.

        Exact on both databases: PostgreSQL counts the rows its INSERT returns (COPY stores
        every row or none); SQLite runs one ``executemany`` per symbol and reads how many rows
        each changed, so a row skipped on conflict is never counted.
        """
        if not rows:
            return {}
        connection = connections[self.using]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor, connection.wrap_database_errors:
                return self._pg_rows(cursor.cursor, spec, rows)
        adapt = connection.ops.adapt_datetimefield_value
        for i in [i for i, c in enumerate(spec.columns) if c in spec.datetimes]:
            rows = [(*r[:i], adapt(r[i]), *r[i + 1 :]) for r in rows]
        sql = spec.insert_sql("%s")
        if not spec.conflict:  # append-only: every row is stored, in the order given
            with connection.cursor() as cursor:
                cursor.executemany(sql, rows)
            return _count_symbols(spec, rows)
        at = spec.columns.index("symbol_id")
        groups: dict[int | None, list[tuple]] = {}
        for row in rows:
            groups.setdefault(row[at], []).append(row)
        counts: SymbolCounts = {}
        with connection.cursor() as cursor:
            for symbol_id, group in groups.items():
                before = connection.connection.total_changes
                cursor.executemany(sql, group)
                counts[symbol_id] = connection.connection.total_changes - before
        return counts

    def _pg_rows(self, raw, spec: TableSpec, rows: list[tuple]) -> SymbolCounts:
        """Insert rows on PostgreSQL idempotently, in as few round trips as possible.

        Append-only tables (quality findings) are copied. Large batches of insert-only tables
        with a unique key are copied straight into the table inside a savepoint: with no row
        already stored (the live case) that is all the work. A unique violation (a replay, a
        reconnect, a concurrent writer) rolls back to the savepoint, and the rows go the way
        small batches and upserts (bars) always go: one ``INSERT … SELECT FROM unnest(…) ON
        CONFLICT`` statement.
        """
        if not spec.conflict:
            self._copy(raw, spec, rows)
            return _count_symbols(spec, rows)
        if spec.update or len(rows) < COPY_MIN_ROWS:
            return self._insert_arrays(raw, spec, rows)
        raw.execute("SAVEPOINT md_copy")
        try:
            self._copy(raw, spec, rows)
        except UniqueViolation:
            raw.execute("ROLLBACK TO SAVEPOINT md_copy")
            return self._insert_arrays(raw, spec, rows)
        raw.execute("RELEASE SAVEPOINT md_copy")
        return _count_symbols(spec, rows)

    def _insert_arrays(self, raw, spec: TableSpec, rows: list[tuple]) -> SymbolCounts:
        """Insert rows as one statement over column arrays, with the table's ON CONFLICT;
        return the rows it inserted/updated per symbol (counted by the server)."""
        types, _ = self._column_types(raw, spec)
        arrays = ", ".join(f"%b::{name}[]" for name in types)
        columns = []
        for name, values in zip(types, zip(*rows, strict=True), strict=True):
            # One Python type per array (ints in a float column, str enums in a text column).
            plain = _ARRAY_TYPES.get(name)
            columns.append([v if v is None or plain is None else plain(v) for v in values])
        # Server-side binding sends the arrays in binary (Django's cursors bind client-side,
        # quoting every element as text).
        with psycopg.Cursor(raw.connection) as bound:
            bound.execute(
                f"WITH stored AS (INSERT INTO {spec.table} ({', '.join(spec.columns)}) "
                f"SELECT * FROM unnest({arrays}) {spec.on_conflict()} RETURNING symbol_id) "
                "SELECT symbol_id, count(*) FROM stored GROUP BY symbol_id",
                columns,
            )
            return dict(bound.fetchall())

    def _copy(self, raw, spec: TableSpec, rows: list[tuple]) -> None:
        """COPY rows into the table: binary, or text when a column is JSON."""
        names, oids = self._column_types(raw, spec)
        binary = not any(name in ("json", "jsonb") for name in names)
        fmt = " (FORMAT BINARY)" if binary else ""
        sql = f"COPY {spec.table} ({', '.join(spec.columns)}) FROM STDIN{fmt}"
        # Rows are formatted on this thread while a worker thread streams them to the server.
        with raw.copy(sql, writer=QueuedLibpqWriter(raw)) as copy:
            if binary:
                copy.set_types(oids)
            write_row = copy.write_row
            for row in rows:
                write_row(row)

    def _column_types(self, raw, spec: TableSpec) -> tuple[list[str], list[int]]:
        """Return the SQL type names and OIDs of the spec's columns (cached per connection)."""
        key = (id(raw.connection), spec.table)
        types = self._types.get(key)
        if types is None:
            raw.execute(
                "SELECT a.attname, format_type(a.atttypid, NULL), a.atttypid::int "
                "FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0",
                [spec.table],
            )
            found = {name: (sql, oid) for name, sql, oid in raw.fetchall()}
            names = [found[c][0] for c in spec.columns]
            types = self._types[key] = (names, [found[c][1] for c in spec.columns])
        return types


def _count_symbols(spec: TableSpec, rows: list[tuple]) -> SymbolCounts:
    """Return the rows per symbol id of rows all stored."""
    at = spec.columns.index("symbol_id")
    counts: SymbolCounts = {}
    for row in rows:
        key = row[at]
        counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass(slots=True)
class WriterStats:
    """Counters and commit latencies of the batched writer."""

    queued: int = 0
    batches: int = 0
    offered: int = 0
    written: int = 0
    # Market-data rows written per symbol (the feed's rrr_feed_rows_stored{symbol}).
    written_by_symbol: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    retries: int = 0
    # Rejections that could not be recorded through ``on_reject`` (each logged with its error).
    unrecorded_rejections: int = 0
    # Seconds, received → committed: every event's unless the writer was given a
    # ``latency_window`` (then the latest ones; ``runtrader`` runs for days).
    latencies: list[float] = field(default_factory=list)


class AsyncBatchWriter:
    """Bounded queue in front of ``MarketDataStore``: batches by size or time, writes off-loop.

    Events arrive one at a time (``put``) or as chunks (``put_many``, what a batch of the
    pipeline produced); a chunk is never split, so a write holds at least ``batch_size`` events
    or whatever arrived within ``flush_interval``, plus at most the rest of one chunk. Producers
    wait while ``max_queue`` events are pending (back-pressure instead of loss). Database work
    runs on a single dedicated thread so it keeps one connection, and overlaps the producer's
    work (the thread waits on the database without holding the GIL). Nothing is dropped
    silently: a database outage is retried with back-off (the bounded queue then pushes back on
    the feed), and a batch that fails on its data is bisected until the offending events are
    isolated; those go to ``on_reject`` (the caller quarantines them) and are counted in
    ``stats.rejected``. Any other failure stops the writer loudly: the next ``put``/``put_many``
    (including one waiting for room) and ``close`` raise ``WriterFailed``, and ``task`` ends
    with the error at once, so the owner never learns of it only at shutdown.
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
        latency_window: int | None = None,
    ) -> None:
        self.store = store or MarketDataStore()
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.clock = clock
        self.on_commit = on_commit
        self.on_reject = on_reject
        self.retry_delays = tuple(retry_delays)
        self.stats = WriterStats()
        if latency_window is not None:  # a long-running owner keeps only the latest latencies
            self.stats.latencies = deque(maxlen=latency_window)
        self._chunks: deque[_Chunk] = deque()
        self._pending = 0  # events queued and not yet taken into a batch
        self._arrived = asyncio.Event()
        self._drained = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="md-writer")
        self._task: asyncio.Task | None = None
        self._closing = False
        self._failure: BaseException | None = None

    def start(self) -> AsyncBatchWriter:
        """Start the background flushing task."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="md-writer")
        return self

    @property
    def task(self) -> asyncio.Task | None:
        """Return the writer's task (done early only when the writer failed)."""
        return self._task

    def _check_alive(self) -> None:
        """Raise WriterFailed when the writer's task has died."""
        if self._failure is not None:
            raise WriterFailed(f"market-data writer stopped: {self._failure!r}") from self._failure

    async def put(self, event: object, received_at: float | None = None) -> None:
        """Queue an event; waits while the queue is full."""
        received = None if received_at is None else (received_at,)
        await self._queue(_Chunk((event,), received, None))

    async def put_many(
        self, events: Sequence[object], received: Sequence[float | None] | None = None
    ) -> None:
        """Queue a chunk of events (``received``: their receive times, None where unknown).

        Its rows are built here, on the producer's thread, so the writer's thread spends its
        time in the database rather than in Python (when a symbol is not cached yet, or an
        event cannot be turned into a row, the writer's thread builds them, and isolates bad
        events).
        """
        if not events:
            return
        try:
            prepared = self.store.prepare(events, cached_only=True)
        except (LookupError, TypeError, ValueError, AttributeError):
            prepared = None
        await self._queue(_Chunk(events, received, prepared))

    async def _queue(self, chunk: _Chunk) -> None:
        self._check_alive()
        while self._pending >= self.max_queue:
            self._drained.clear()
            await self._drained.wait()
            self._check_alive()  # a dead writer wakes waiting producers to tell them
        self._chunks.append(chunk)
        self._pending += len(chunk.events)
        self.stats.queued += len(chunk.events)
        self._arrived.set()

    async def close(self) -> WriterStats:
        """Flush everything queued, stop the task and release the thread's connection."""
        self._closing = True
        self._arrived.set()
        try:
            if self._task is not None:
                await asyncio.gather(self._task, return_exceptions=True)
        finally:
            await asyncio.get_running_loop().run_in_executor(self._executor, _close_thread_db)
            self._executor.shutdown(wait=True)
        self._check_alive()
        return self.stats

    async def _next_batch(self) -> tuple[list[_Chunk], bool]:
        """Collect ``batch_size`` events or whatever arrives within ``flush_interval``."""
        batch: list[_Chunk] = []
        while not self._chunks and not self._closing:
            self._arrived.clear()
            await self._arrived.wait()
        deadline = self.clock() + self.flush_interval
        size = 0
        while True:
            size = self._take(batch, size)
            if size >= self.batch_size or self._closing:
                break
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        return batch, self._closing and not self._chunks

    def _take(self, batch: list[_Chunk], size: int) -> int:
        """Move queued chunks into the batch until it holds ``batch_size`` events."""
        chunks = self._chunks
        taken = size
        while chunks and size < self.batch_size:
            chunk = chunks.popleft()
            batch.append(chunk)
            size += len(chunk.events)
        self._pending -= size - taken
        if self._pending < self.max_queue:
            self._drained.set()
        return size

    async def _run(self) -> None:
        try:
            await self._write_until_closed()
        except BaseException as exc:
            self._failure = exc
            if not isinstance(exc, asyncio.CancelledError):
                logger.critical("market-data writer stopped; nothing more is stored", exc_info=exc)
            self._drained.set()  # wake producers waiting for room: they raise WriterFailed
            raise

    async def _write_until_closed(self) -> None:
        loop = asyncio.get_running_loop()
        done = False
        while not done:
            batch, done = await self._next_batch()
            if not batch:
                continue
            result = await self._write_with_retry(loop, batch)
            committed = self.clock()
            self.stats.batches += 1
            self.stats.offered += sum(len(chunk.events) for chunk in batch)
            self.stats.written += result.total_written
            by_symbol = self.stats.written_by_symbol
            for symbol, count in result.by_symbol.items():
                by_symbol[symbol] = by_symbol.get(symbol, 0) + count
            for chunk in batch:
                if chunk.received is not None:
                    self.stats.latencies.extend(
                        committed - r for r in chunk.received if r is not None
                    )
            if self.on_commit is not None:
                self.on_commit(result)

    async def _write_with_retry(self, loop, batch: list[_Chunk]) -> WriteResult:
        """Write, retrying transient database errors with back-off (forever, last delay repeats)."""
        attempt = 0
        while True:
            try:
                return await loop.run_in_executor(self._executor, self._write_batch, batch)
            except (OperationalError, InterfaceError) as exc:
                delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
                self.stats.retries += 1
                attempt += 1
                logger.warning("market-data write failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    def _write_batch(self, batch: list[_Chunk]) -> WriteResult:
        """Write the batch's prepared rows; on a data error, isolate the bad events."""
        close_old_connections()
        prepared = [chunk.prepared for chunk in batch]
        if None not in prepared:
            try:
                return self.store.write_prepared(prepared)
            except _DATA_ERRORS:
                logger.info("market-data batch refused; isolating the events it cannot store")
        return self._write_isolating([event for chunk in batch for event in chunk.events])

    def _write_isolating(self, events: list) -> WriteResult:
        """Write ``events``; on a data error, bisect to isolate and reject the bad events."""
        try:
            return self.store.write(events)
        except _DATA_ERRORS as exc:
            if len(events) == 1:
                self._reject(events[0], exc)
                return WriteResult()
        middle = len(events) // 2
        result = self._write_isolating(events[:middle])
        result.merge(self._write_isolating(events[middle:]))
        return result

    def _reject(self, event: object, exc: Exception) -> None:
        """Count a refused event and hand it to ``on_reject``; a failed record is logged loudly."""
        self.stats.rejected += 1
        logger.warning("market-data event rejected by storage: %s", exc)
        if self.on_reject is None:
            return
        try:
            self.on_reject(event, f"{type(exc).__name__}: {exc}")
        except _DATA_ERRORS:
            # The quarantine record itself was refused: keep writing the feed's other events.
            self.stats.unrecorded_rejections += 1
            logger.exception("market-data rejection could not be recorded: %.300r", event)


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Events queued together, their receive times and (when built) their rows."""

    events: Sequence[object]
    received: Sequence[float | None] | None
    prepared: PreparedRows | None


# What a batch's data (not the database's availability) can fail on: isolate, don't retry.
_DATA_ERRORS = (IntegrityError, DataError, UnknownSymbol, ValueError, TypeError)


def _close_thread_db() -> None:
    """Close this thread's database connections."""
    connections.close_all()
