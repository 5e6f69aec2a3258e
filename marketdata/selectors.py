"""Reads for market data: symbols and bars as DataFrames."""

from __future__ import annotations

import io
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection

from marketdata.feeds import FeedConfig
from marketdata.models import Bar, Symbol

if TYPE_CHECKING:  # pandas costs ~0.6 s at import: loaded by the functions that build frames
    import pandas as pd

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


def _bars_copy(where: str, params: list) -> pd.DataFrame:
    """Stream bars out of PostgreSQL with COPY … TO STDOUT (CSV): ~3x faster than fetching rows."""
    import pandas as pd
    cols = ", ".join(
        ["(EXTRACT(EPOCH FROM b.ts) * 1000000)::bigint"] + [f"b.{c}" for c in BAR_COLUMNS[1:]]
    )
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        raw = cursor.cursor
        query = raw.mogrify(f"SELECT {cols} {where}", params)
        with raw.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
            for chunk in copy:
                buffer.write(chunk)
    buffer.seek(0)
    frame = pd.read_csv(buffer, names=BAR_COLUMNS, header=None)
    frame["ts"] = pd.to_datetime(frame["ts"], unit="us", utc=True)
    return frame


def feed_config() -> FeedConfig:
    """Return the feed endpoints and keys configured in settings."""
    return FeedConfig(
        polygon_url=settings.POLYGON_WS_URL,
        polygon_api_key=settings.POLYGON_API_KEY,
        coinbase_url=settings.COINBASE_WS_URL,
        binance_url=settings.BINANCE_WS_URL,
    )
