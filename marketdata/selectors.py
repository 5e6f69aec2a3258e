"""Reads for market data: symbols and bars as DataFrames."""

from __future__ import annotations

import io
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection

from marketdata.models import Bar, Symbol

if TYPE_CHECKING:  # pandas costs ~0.6 s at import: loaded by the functions that build frames
    import pandas as pd

    from marketdata.feeds import FeedConfig  # the simulator's numpy: loaded by feed_config()

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
        frame = _bars_copy(where, [symbol, timeframe, simulated, start, end])
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


# One row of ``COPY … (FORMAT binary)`` of the query below: a field count, then each field's
# length and big-endian value (every field fixed-width and never NULL there). A timestamptz
# travels as int8 microseconds since 2000-01-01 UTC (PostgreSQL's own epoch).
_BINARY_ROW = [("fields", ">i2"), ("ts_len", ">i4"), ("ts", ">i8")]
for _name in BAR_COLUMNS[1:-1]:
    _BINARY_ROW += [(f"{_name}_len", ">i4"), (_name, ">f8")]
_BINARY_ROW += [("trade_count_len", ">i4"), ("trade_count", ">i8")]
_BINARY_HEADER = 19  # signature (11), flags (4), header extension length (4: zero)
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC in microseconds since 1970-01-01


def _bars_copy(where: str, params: list) -> pd.DataFrame:
    """Stream bars out of PostgreSQL with binary COPY straight into numpy arrays.

    Fixed-width rows (the timestamp as stored, float8 prices, int8 count; a missing vwap is NaN)
    are read with one ``np.frombuffer``: no text parsing, no per-row Python objects, and no
    per-row arithmetic on the server (the timestamp is shifted to the Unix epoch here, in numpy).
    """
    import numpy as np
    import pandas as pd

    floats = ", ".join(f"b.{c}::float8" for c in BAR_COLUMNS[1:-2])
    cols = f"b.ts, {floats}, COALESCE(b.vwap, 'NaN')::float8, b.trade_count::int8"
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        raw = cursor.cursor
        query = raw.mogrify(f"SELECT {cols} {where}", params)
        with raw.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
            for chunk in copy:
                buffer.write(chunk)
    data = buffer.getbuffer()
    row = np.dtype(_BINARY_ROW)
    count = (len(data) - _BINARY_HEADER - 2) // row.itemsize  # the trailer is one int16 (-1)
    if len(data) < _BINARY_HEADER + 2 or bytes(data[:11]) != b"PGCOPY\n\xff\r\n\x00":
        raise RuntimeError("unexpected COPY BINARY stream from PostgreSQL")
    rows = np.frombuffer(data, dtype=row, count=count, offset=_BINARY_HEADER)
    if count and (rows["fields"] != len(BAR_COLUMNS)).any():
        raise RuntimeError("unexpected row layout in the COPY BINARY stream")
    frame = pd.DataFrame(
        {name: rows[name].astype(rows[name].dtype.newbyteorder("=")) for name in BAR_COLUMNS}
    )
    frame["ts"] = pd.to_datetime(frame["ts"] + _PG_EPOCH_US, unit="us", utc=True)
    return frame


def feed_config() -> FeedConfig:
    """Return the feed endpoints and keys configured in settings."""
    from marketdata.feeds import FeedConfig

    return FeedConfig(
        polygon_url=settings.POLYGON_WS_URL,
        polygon_api_key=settings.POLYGON_API_KEY,
        coinbase_url=settings.COINBASE_WS_URL,
        binance_url=settings.BINANCE_WS_URL,
    )
