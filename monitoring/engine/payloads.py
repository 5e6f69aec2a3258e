"""Stream payloads of market data, built alike from engine events and stored rows.

Prices and sizes are decimal strings, times ISO-8601 UTC; a ``Bar``, ``Trade``, ``Quote`` or
``BookSnapshot`` of ``marketdata.engine.events`` and the ORM row of the same name give the same
shape, so a snapshot's items and the live messages after it look alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitoring.engine.stream import decimal_text


def iso(ts: datetime | None) -> str | None:
    """Return ``ts`` as ISO-8601 (None stays None)."""
    return ts.isoformat() if ts is not None else None


def bar_payload(bar: Any, *, symbol: str | None = None, closed: bool = True) -> dict:
    """Return the ``bar`` message data of an OHLCV bar (``closed`` false while it forms)."""
    return {
        "symbol": symbol or bar.symbol,
        "timeframe": bar.timeframe,
        "ts": iso(bar.ts),
        "open": decimal_text(bar.open),
        "high": decimal_text(bar.high),
        "low": decimal_text(bar.low),
        "close": decimal_text(bar.close),
        "volume": decimal_text(bar.volume),
        "closed": closed,
    }


def trade_payload(trade: Any, *, symbol: str | None = None) -> dict:
    """Return the ``trade`` message data of an executed trade."""
    side = getattr(trade.side, "value", trade.side)
    return {
        "symbol": symbol or trade.symbol,
        "ts": iso(trade.ts),
        "price": decimal_text(trade.price),
        "size": decimal_text(trade.size),
        "side": side or None,
    }


def quote_payload(quote: Any, *, symbol: str | None = None) -> dict:
    """Return the ``quote`` message data of a top of book."""
    return {
        "symbol": symbol or quote.symbol,
        "ts": iso(quote.ts),
        "bid": decimal_text(quote.bid),
        "bid_size": decimal_text(quote.bid_size),
        "ask": decimal_text(quote.ask),
        "ask_size": decimal_text(quote.ask_size),
    }


def book_payload(book: Any, *, symbol: str | None = None, depth: int = 10) -> dict:
    """Return the ``book`` message data: the top ``depth`` levels of each side."""

    def levels(side) -> list[list[str]]:
        return [[decimal_text(p), decimal_text(s)] for p, s in list(side)[:depth]]

    return {
        "symbol": symbol or book.symbol,
        "ts": iso(book.ts),
        "bids": levels(book.bids),
        "asks": levels(book.asks),
    }
