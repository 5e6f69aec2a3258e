"""Writes for market data: the default symbol set."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import transaction

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
    """No bars are stored for a request and none can be simulated."""


def bars_load_or_simulate(
    *, symbol: str, timeframe: str, start, end, seed: int = 42
) -> tuple[pd.DataFrame, str]:
    """Return stored bars in [start, end) and their origin: "database" or "simulated".

    When none are stored, the simulated market's bars for the range (deterministic for ``seed``,
    the same as ``backfill --source sim``) are generated and stored first, so callers always work
    on what the database holds.
    """
    from marketdata.backfill import BackfillError, SimulatedPages
    from marketdata.selectors import bars_frame
    from marketdata.storage import MarketDataStore

    bars = bars_frame(symbol=symbol, timeframe=timeframe, start=start, end=end)
    if len(bars):
        return bars, "database"
    try:
        pages = SimulatedPages(symbol, timeframe, seed=seed)
        symbols_ensure([symbol])
    except (BackfillError, ValueError) as exc:
        raise MarketDataUnavailable(
            f"no {symbol} {timeframe} bars in the database and none can be simulated: {exc}"
        ) from exc
    store = MarketDataStore()
    written = sum(store.write(page).total_written for page in pages.pages(start, end))
    logger.warning(
        "no %s %s bars stored for %s .. %s: stored %d simulated bars (seed %d)",
        symbol,
        timeframe,
        start,
        end,
        written,
        seed,
    )
    return bars_frame(symbol=symbol, timeframe=timeframe, start=start, end=end), "simulated"
