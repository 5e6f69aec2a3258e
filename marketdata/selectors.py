"""Reads for market data: symbols and bars as DataFrames."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, connections

from marketdata.models import Bar, Symbol

if TYPE_CHECKING:  # pandas costs ~0.6 s at import: loaded by the functions that build frames
    import pandas as pd

    from marketdata.feeds import FeedConfig  # the simulator's numpy: loaded by feed_config()

logger = logging.getLogger(__name__)

BAR_COLUMNS = ["ts", "open", "high", "low", "close", "volume", "vwap", "trade_count"]


def symbols_active() -> list[Symbol]:
    """Return active symbols ordered by name."""
    return list(Symbol.objects.filter(active=True).order_by("name"))


def symbol_ids(names: list[str] | None = None) -> dict[str, int]:
    """Return a name → id map for the given symbols (all when ``names`` is None)."""
    qs = Symbol.objects.all()
    if names is not None:
        qs = qs.filter(name__in=names)
    return dict(qs.values_list("name", "id"))


def bars_frame(
    *, symbol: str, timeframe: str, start: datetime, end: datetime, simulated: bool = False
) -> pd.DataFrame:
    """Return bars in [start, end) as a DataFrame indexed by UTC ``ts``, read with one query.

    Only bars observed on a venue, unless ``simulated``: then only the simulated market's.
    """
    import pandas as pd

    where = (
        f"FROM {Bar._meta.db_table} b JOIN {Symbol._meta.db_table} s ON s.id = b.symbol_id "
        f"WHERE s.name = %s AND b.timeframe = %s AND b.simulated = %s "
        f"AND b.ts >= %s AND b.ts < %s ORDER BY b.ts"
    )
    if connection.vendor == "postgresql":
        frame = _bars_packed(symbol, timeframe, simulated, start, end)
    else:
        adapt = connection.ops.adapt_datetimefield_value  # SQLite compares datetimes as text
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join('b.' + c for c in BAR_COLUMNS)} {where}",
                [symbol, timeframe, simulated, adapt(start), adapt(end)],
            )
            rows = cursor.fetchall()
        frame = pd.DataFrame.from_records(rows, columns=BAR_COLUMNS)
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    for column in ("open", "high", "low", "close", "volume", "vwap"):
        frame[column] = frame[column].astype(float)
    frame["trade_count"] = frame["trade_count"].astype("int64")
    return frame.set_index("ts")


# Each bar packed by PostgreSQL into one fixed-width binary record, all of a chunk's records
# concatenated into one bytea value in ts order: the timestamp as stored (int8 microseconds since
# 2000-01-01 UTC, PostgreSQL's epoch), six float8 (a missing vwap is NaN) and the int8 count,
# all big-endian. One value per chunk instead of one COPY message per row: the client does no
# per-row work at all (numpy reads the records in place).
_PACKED_FIELDS = [("ts", ">i8"), *((c, ">f8") for c in BAR_COLUMNS[1:-1]), ("trade_count", ">i8")]
_PACKED_RECORD = (
    "timestamptz_send(b.ts) || float8send(b.open) || float8send(b.high) || float8send(b.low) "
    "|| float8send(b.close) || float8send(b.volume) || float8send(COALESCE(b.vwap, 'NaN')) "
    "|| int8send(b.trade_count::int8)"
)
# Bars per query: 64-byte records, 64 MB per value, far below PostgreSQL's 1 GB limit on one.
PACKED_CHUNK_ROWS = 1_000_000
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC in microseconds since 1970-01-01


def _bars_packed(
    symbol: str, timeframe: str, simulated: bool, start: datetime, end: datetime
) -> pd.DataFrame:
    """Read bars from PostgreSQL as packed binary records into numpy arrays (or take the read
    ``bars_prefetch`` started for the same arguments)."""
    import numpy as np
    import pandas as pd

    key = (symbol, timeframe, simulated, start, end)
    prefetched = _PREFETCHED.pop(key, None)
    packed = prefetched.result() if prefetched is not None else None
    if not packed:  # none started, it failed, or it found nothing (the sim source stores some)
        packed = _bars_packed_read(*key)
    records = np.frombuffer(packed, dtype=np.dtype(_PACKED_FIELDS))
    frame = pd.DataFrame(
        {name: records[name].astype(records[name].dtype.newbyteorder("=")) for name in BAR_COLUMNS}
    )
    frame["ts"] = pd.to_datetime(frame["ts"] + _PG_EPOCH_US, unit="us", utc=True)
    return frame


def _bars_packed_read(
    symbol: str, timeframe: str, simulated: bool, start: datetime, end: datetime
) -> bytes:
    """Return the bars' packed records, read chunk by chunk on this thread's connection.

    Chunks follow ``ts`` (unique per symbol, timeframe and origin): each starts after the last
    bar of the previous one, so no bar is read twice or skipped, whatever the range's size.
    """
    import psycopg

    sql = (
        f"SELECT count(*), max(b.ts), string_agg({_PACKED_RECORD}, ''::bytea ORDER BY b.ts) "
        f"FROM (SELECT b.* FROM {Bar._meta.db_table} b "
        f"JOIN {Symbol._meta.db_table} s ON s.id = b.symbol_id "
        "WHERE s.name = %s AND b.timeframe = %s AND b.simulated = %s "
        "AND b.ts {after} %s AND b.ts < %s ORDER BY b.ts LIMIT %s) b"
    )
    chunks, after, op = [], start, ">="
    connection.ensure_connection()
    # A plain (server-binding) cursor: Django's client-side cursors cannot return binary values.
    with psycopg.Cursor(connection.connection) as cursor:
        while True:
            params = [symbol, timeframe, simulated, after, end, PACKED_CHUNK_ROWS]
            cursor.execute(sql.format(after=op), params, binary=True)
            count, last, packed = cursor.fetchone()
            if count:
                chunks.append(packed)
            if count < PACKED_CHUNK_ROWS:
                break
            after, op = last, ">"
    return b"".join(chunks)


class _Prefetch(threading.Thread):
    """One bars read on a thread (and database connection) of its own; ``result()`` waits."""

    def __init__(self, key: tuple) -> None:
        super().__init__(name=f"bars-prefetch-{key[0]}")
        self.key = key
        self.packed: bytes | None = None

    def run(self) -> None:
        try:
            self.packed = _bars_packed_read(*self.key)
        except Exception:  # the caller reads again on its own connection, and sees any error
            logger.warning("bars prefetch of %s failed", self.key[0], exc_info=True)
        finally:
            connections.close_all()  # this thread's connection

    def result(self) -> bytes | None:
        self.join()
        return self.packed


_PREFETCHED: dict[tuple, _Prefetch] = {}


def bars_prefetch(
    *, symbol: str, timeframe: str, start: datetime, end: datetime, simulated: bool = False
) -> tuple | None:
    """Start reading what ``bars_frame`` with these arguments will return, in the background;
    return its key for ``bars_prefetch_forget`` (None when nothing was started).

    PostgreSQL only (elsewhere nothing happens). A command calls it before its slow imports:
    the server reads and packs the bars meanwhile, on another connection; the first
    ``bars_frame`` with the same arguments takes the result (a read that found nothing, or
    failed, is done again then). Bars are read as of the call.
    """
    if connection.vendor != "postgresql":
        return None
    key = (symbol, timeframe, simulated, start, end)
    if key not in _PREFETCHED:
        _PREFETCHED[key] = prefetch = _Prefetch(key)
        prefetch.start()
    return key


def bars_prefetch_forget(keys: list[tuple]) -> None:
    """Drop the prefetches of ``keys`` nothing took (a command refused before reading its bars):
    a later ``bars_frame`` in this process must read the bars as they are then."""
    for key in keys:
        prefetch = _PREFETCHED.pop(key, None)
        if prefetch is not None:
            prefetch.join()  # its connection closes with it


def feed_config() -> FeedConfig:
    """Return the feed endpoints and keys configured in settings."""
    from marketdata.feeds import FeedConfig

    return FeedConfig(
        polygon_url=settings.POLYGON_WS_URL,
        polygon_api_key=settings.POLYGON_API_KEY,
        coinbase_url=settings.COINBASE_WS_URL,
        binance_url=settings.BINANCE_WS_URL,
    )
