"""Reads for market data: symbols and bars as DataFrames."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from django.conf import settings
from django.db import connection

from marketdata.feeds import FeedConfig
from marketdata.models import Bar, Symbol

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


def bars_frame(*, symbol: str, timeframe: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Return bars in [start, end) as a DataFrame indexed by UTC ``ts``, read with one query."""
    table = Bar._meta.db_table
    sym_table = Symbol._meta.db_table
    sql = (
        f"SELECT b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count "
        f"FROM {table} b JOIN {sym_table} s ON s.id = b.symbol_id "
        f"WHERE s.name = %s AND b.timeframe = %s AND b.ts >= %s AND b.ts < %s ORDER BY b.ts"
    )
    adapt = connection.ops.adapt_datetimefield_value  # SQLite compares datetimes as text
    with connection.cursor() as cursor:
        cursor.execute(sql, [symbol, timeframe, adapt(start), adapt(end)])
        rows = cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=BAR_COLUMNS)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.set_index("ts")


def feed_config() -> FeedConfig:
    """Return the feed endpoints and keys configured in settings."""
    return FeedConfig(
        polygon_url=settings.POLYGON_WS_URL,
        polygon_api_key=settings.POLYGON_API_KEY,
        coinbase_url=settings.COINBASE_WS_URL,
        binance_url=settings.BINANCE_WS_URL,
    )
