"""Reads of the newest market data and of bar pages: the REST API and its pre-trade check."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd

from marketdata.engine.aggregator import resample_frame
from marketdata.engine.events import TIMEFRAME_SECONDS, decimal_mid
from marketdata.models import Bar, BookSnapshot, Quote

MAX_RESAMPLE_SOURCE_ROWS = 500_000  # source bars read for one resampled page, at most


def latest_quote(*, symbol: str) -> Quote | None:
    """Return the newest stored quote of ``symbol``."""
    return Quote.objects.filter(symbol__name=symbol).order_by("-ts").first()


def latest_book(*, symbol: str) -> BookSnapshot | None:
    """Return the newest stored order-book snapshot of ``symbol``."""
    return BookSnapshot.objects.filter(symbol__name=symbol).order_by("-ts").first()


def latest_price(*, symbol: str) -> Decimal | None:
    """Return the freshest stored price of ``symbol`` (None without data).

    The newer of the last quote's mid and the last 1m bar's close (of any timeframe when no 1m
    bar exists), real or simulated: a paper account on the simulated market trades its prices.
    """
    bars = Bar.objects.filter(symbol__name=symbol)
    bar = bars.filter(timeframe="1m").order_by("-ts").first() or bars.order_by("-ts").first()
    quote = latest_quote(symbol=symbol)
    bar_end = bar.ts + timedelta(seconds=TIMEFRAME_SECONDS[bar.timeframe]) if bar else None
    if quote is not None and quote.bid > 0 and quote.ask > 0:
        if bar_end is None or quote.ts >= bar_end:
            return decimal_mid(quote.bid, quote.ask)
    return Decimal(str(bar.close)) if bar is not None else None


def bars_page(
    *,
    symbol: str,
    timeframe: str,
    start: datetime,
    end: datetime,
    limit: int,
    resample_to: str | None = None,
    simulated: bool = False,
) -> tuple[list[dict], datetime | None]:
    """Return up to ``limit`` bars from ``start`` (a cursor) before ``end`` and the next cursor.

    With ``resample_to`` (a multiple of ``timeframe``) the stored bars are combined by
    ``resample_frame`` (the pipeline's resampler maths); a page keeps only complete windows
    before the next cursor, which starts the first window it left out. Bars observed on a venue,
    or with ``simulated`` the simulated market's.
    """
    stored = Bar.objects.filter(
        symbol__name=symbol, timeframe=timeframe, simulated=simulated, ts__gte=start, ts__lt=end
    )
    columns = ["ts", "open", "high", "low", "close", "volume", "vwap", "trade_count"]
    if resample_to is None or resample_to == timeframe:
        rows = list(stored.order_by("ts").values(*columns)[: limit + 1])
        cursor = rows[limit]["ts"] if len(rows) > limit else None
        return rows[:limit], cursor
    ratio = TIMEFRAME_SECONDS[resample_to] // TIMEFRAME_SECONDS[timeframe]
    limit = max(1, min(limit, MAX_RESAMPLE_SOURCE_ROWS // ratio - 1))
    source = list(stored.order_by("ts").values(*columns)[: (limit + 1) * ratio])
    if not source:
        return [], None
    frame = resample_frame(pd.DataFrame.from_records(source).assign(symbol=symbol), resample_to)
    windows = [
        {**row, "ts": row["ts"].to_pydatetime(), "vwap": _finite_or_none(row["vwap"])}
        for row in frame.drop(columns=["symbol"]).to_dict("records")
    ]
    cursor = windows[limit]["ts"] if len(windows) > limit else None
    return windows[:limit], cursor


def _finite_or_none(value: float | None) -> float | None:
    """Return ``value`` unless it is missing or NaN (a window without volume has no VWAP)."""
    return None if value is None or value != value else float(value)
