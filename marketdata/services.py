"""Writes for market data: the default symbol set."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import transaction

from marketdata.data_source import DATA_SOURCES
from marketdata.engine.constants import DEFAULT_SYMBOLS
from marketdata.models import Symbol

if TYPE_CHECKING:  # pandas costs ~0.6 s at import: loaded only where bars are built
    import pandas as pd

logger = logging.getLogger(__name__)


def _venue_symbols(base: str, quote: str) -> dict[str, str]:
    """Return how each venue names the pair (Binance trades against USDT)."""
    quote_binance = "USDT" if quote == "USD" else quote
    return {
        "polygon": f"X:{base}{quote}",
        "coinbase": f"{base}-{quote}",
        "binance": f"{base}{quote_binance}",
        "kraken": f"{base}/{quote}",
        "ccxt:binance": f"{base}/{quote_binance}",
        "ccxt:coinbase": f"{base}/{quote}",
        "ccxt:kraken": f"{base}/{quote}",
    }


@transaction.atomic
def symbols_ensure_defaults() -> int:
    """Create the product's default symbols that are missing; return how many were created."""
    created = 0
    for spec in DEFAULT_SYMBOLS:
        _, was_created = Symbol.objects.get_or_create(
            name=spec.symbol,
            defaults={
                "base": spec.base_asset,
                "quote": spec.quote_asset,
                "venue_symbols": _venue_symbols(spec.base_asset, spec.quote_asset),
                "tick_size": Decimal(str(spec.tick_size)),
                "lot_size": Decimal(str(spec.lot_size)),
                "reference_price": spec.base_price,
                "reference_volume": spec.daily_volume,
            },
        )
        created += was_created
    return created


def symbols_ensure(names: list[str]) -> list[Symbol]:
    """Return Symbol rows for ``names`` (BASE-QUOTE), creating missing ones from their name."""
    existing = {s.name: s for s in Symbol.objects.filter(name__in=names)}
    for name in names:
        if name not in existing:
            base, sep, quote = name.partition("-")
            if not sep or not base or not quote:
                raise ValueError(f"symbol {name!r} is not BASE-QUOTE (e.g. BTC-USD)")
            existing[name] = Symbol.objects.create(
                name=name, base=base, quote=quote, venue_symbols=_venue_symbols(base, quote)
            )
    return [existing[n] for n in names]


def quality_event_record_rejected(*, event: object, reason: str, source: str) -> None:
    """Record an event the storage refused (e.g. unknown symbol) as a quarantined finding."""
    from django.utils import timezone

    from marketdata.models import DataQualityEvent
    from marketdata.pipeline import event_payload, storable_text

    symbol = getattr(event, "symbol", "")
    # A name with NUL cannot even be queried on PostgreSQL; it names no symbol anyway.
    known = isinstance(symbol, str) and symbol.isprintable() and symbol
    event_ts = getattr(event, "ts", None)
    DataQualityEvent.objects.create(
        ts=timezone.now(),
        event_ts=event_ts if isinstance(event_ts, datetime) and event_ts.tzinfo else None,
        source=source,
        symbol=Symbol.objects.filter(name=symbol).first() if known else None,
        rule="storage_rejected",
        verdict="quarantine",
        reason=storable_text(reason)[:2000],
        payload=event_payload(event),
    )


class MarketDataUnavailable(ValueError):
    """No bars are stored for a request (or, with ``--source sim``, none can be simulated)."""


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else str(value)


def bars_missing_message(*, symbol: str, timeframe: str, start, end) -> str:
    """Return the error for a range without stored bars: what is missing and how to get it."""
    return (
        f"no {symbol} {timeframe} bars stored for {_iso(start)} .. {_iso(end)}; fetch them with "
        f"`manage.py backfill --source ccxt:binance --symbols {symbol} --timeframe {timeframe} "
        f"--start {_iso(start)} --end {_iso(end)}` (or polygon, csv, ...), or run on the "
        f"simulated market with --source sim"
    )


def bars_load(
    *, symbol: str, timeframe: str, start, end, source: str = "database", seed: int = 42
) -> tuple[pd.DataFrame, str]:
    """Return bars in [start, end) and their origin: "database" or "simulated".

    ``source="database"`` reads the bars observed on venues and raises ``MarketDataUnavailable``
    (saying how to get them) when none are stored: simulated bars never stand in for them.
    ``source="sim"`` reads the simulated market's bars, generating them first when none are
    stored (deterministic for ``seed``, as ``backfill --source sim``), stored marked simulated.
    """
    from marketdata.selectors import bars_frame

    if source not in DATA_SOURCES:
        raise MarketDataUnavailable(f"source must be one of {', '.join(DATA_SOURCES)}: {source!r}")
    simulated = source == "sim"
    bars = bars_frame(symbol=symbol, timeframe=timeframe, start=start, end=end, simulated=simulated)
    if len(bars) and not (simulated and len(bars) < _windows_between(timeframe, start, end)):
        return bars, "simulated" if simulated else "database"
    if not simulated:
        raise MarketDataUnavailable(
            bars_missing_message(symbol=symbol, timeframe=timeframe, start=start, end=end)
        )
    _simulate_and_store(symbol=symbol, timeframe=timeframe, start=start, end=end, seed=seed)
    bars = bars_frame(symbol=symbol, timeframe=timeframe, start=start, end=end, simulated=True)
    return bars, "simulated"


def _windows_between(timeframe: str, start, end) -> int:
    """Return how many bars of ``timeframe`` start in [start, end) (0 for an unknown one).

    A simulated range stored in part (an earlier, shorter run) is completed, never cut to the
    stored part: the simulated market gives the same bar for a window whatever range is asked.
    """
    from marketdata.engine.events import TIMEFRAME_SECONDS

    secs = TIMEFRAME_SECONDS.get(str(timeframe))
    if not secs:
        return 0
    first = math.ceil(start.timestamp() / secs)
    return max(0, math.ceil(end.timestamp() / secs) - first)


def _simulate_and_store(*, symbol: str, timeframe: str, start, end, seed: int) -> int:
    """Store the simulated market's bars for the range (marked simulated); return rows written."""
    from marketdata.backfill import BackfillError, SimulatedPages
    from marketdata.storage import MarketDataStore

    try:
        pages = SimulatedPages(symbol, timeframe, seed=seed)
        symbols_ensure([symbol])
    except (BackfillError, ValueError) as exc:
        raise MarketDataUnavailable(
            f"no {symbol} {timeframe} bars stored and none can be simulated: {exc}"
        ) from exc
    store = MarketDataStore()
    written = sum(store.write(page).total_written for page in pages.pages(start, end))
    logger.info(
        "stored %d simulated %s %s bars for %s .. %s (seed %d, marked simulated)",
        written,
        symbol,
        timeframe,
        start,
        end,
        seed,
    )
    return written
