"""Writes for market data: the default symbol set."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from marketdata.engine.constants import DEFAULT_SYMBOLS
from marketdata.models import Symbol


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
    from marketdata.pipeline import event_payload

    symbol = getattr(event, "symbol", "")
    DataQualityEvent.objects.create(
        ts=timezone.now(),
        event_ts=getattr(event, "ts", None),
        source=source,
        symbol=Symbol.objects.filter(name=symbol).first() if symbol else None,
        rule="storage_rejected",
        verdict="quarantine",
        reason=reason[:2000],
        payload=event_payload(event),
    )
