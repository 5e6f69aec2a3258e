"""Stream payloads of market data, built alike from engine events and stored rows.

Prices and sizes are decimal strings, times ISO-8601 UTC; a ``Bar``, ``Trade``, ``Quote`` or
``BookSnapshot`` of ``marketdata.engine.events`` and the ORM row of the same name give the same
shape, so a snapshot's items and the live messages after it look alike.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
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


def order_id_text(value: object) -> str:
    """Return a client order id as the API and the stream's snapshots write it: a dashed UUID.

    The engine keeps ids as 32 hex digits; an id that is not a UUID (a venue's own) stays as is.
    """
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return str(value)


def order_payload(order: Any, account: str) -> dict:
    """Return the ``order`` message data of an engine order."""
    return {
        "account": account,
        "client_order_id": order_id_text(order.client_order_id),
        "symbol": order.symbol,
        "side": str(order.side),
        "type": str(order.type),
        "quantity": decimal_text(order.quantity),
        "price": decimal_text(order.price),
        "stop_price": decimal_text(order.stop_price),
        "status": str(order.status),
        "filled_quantity": decimal_text(order.filled_quantity),
        "average_fill_price": decimal_text(order.avg_fill_price),
        "reason": order.reject_reason,
        "ts": iso(order.updated_ts or order.created_ts),
    }


def fill_payload(fill: Any, account: str) -> dict:
    """Return the ``fill`` message data of an engine fill."""
    return {
        "account": account,
        "client_order_id": order_id_text(fill.order_id),
        "symbol": fill.symbol,
        "side": str(fill.side),
        "quantity": decimal_text(fill.quantity),
        "price": decimal_text(fill.price),
        "fee": decimal_text(fill.fee),
        "ts": iso(fill.ts),
    }


def portfolio_payload(snap: Any, account: str) -> dict:
    """Return the ``portfolio`` message data of an engine portfolio snapshot (with positions)."""
    positions = []
    for p in snap.positions:
        if not p.quantity:
            continue
        unrealized = (p.mark_price - p.avg_price) * p.quantity if p.mark_price is not None else 0
        positions.append(
            {
                "symbol": p.symbol,
                "quantity": decimal_text(p.quantity),
                "average_price": decimal_text(p.avg_price),
                "mark_price": decimal_text(p.mark_price),
                "unrealized_pnl": decimal_text(unrealized),
                "realized_pnl": decimal_text(p.realized_pnl),
            }
        )
    return {
        "account": account,
        "ts": iso(snap.ts),
        "cash": decimal_text(snap.cash),
        "equity": decimal_text(snap.equity),
        "daily_pnl": decimal_text(snap.daily_pnl),
        "realized_pnl": decimal_text(snap.realized_pnl),
        "unrealized_pnl": decimal_text(snap.unrealized_pnl),
        "positions": positions,
    }


class FormingBars:
    """The bar of each symbol's current window, built from trades: the chart's live bar.

    ``on_trade`` returns a ``bar`` payload with ``closed: false`` at most every ``every``
    seconds of ``clock`` per symbol (clients see it move without a message per trade).
    """

    def __init__(self, timeframe: str, seconds: int, clock, every: float = 0.25) -> None:
        self.timeframe = timeframe
        self.seconds = seconds
        self.clock = clock
        self.every = every
        self._bars: dict[str, list] = {}  # symbol -> [window start, o, h, l, c, v]
        self._sent: dict[str, float] = {}

    def on_trade(self, trade: Any) -> dict | None:
        """Fold ``trade`` into its symbol's forming bar; return a payload when one is due."""
        epoch = trade.ts.timestamp()
        start = epoch - epoch % self.seconds
        bar = self._bars.get(trade.symbol)
        price, size = trade.price, trade.size
        if bar is None or bar[0] != start:
            bar = self._bars[trade.symbol] = [start, price, price, price, price, 0.0]
        bar[2], bar[3], bar[4] = max(bar[2], price), min(bar[3], price), price
        bar[5] += size
        now = self.clock()
        if now - self._sent.get(trade.symbol, float("-inf")) < self.every:
            return None
        self._sent[trade.symbol] = now
        return {
            "symbol": trade.symbol,
            "timeframe": self.timeframe,
            "ts": iso(datetime.fromtimestamp(start, UTC)),
            "open": decimal_text(bar[1]),
            "high": decimal_text(bar[2]),
            "low": decimal_text(bar[3]),
            "close": decimal_text(bar[4]),
            "volume": decimal_text(bar[5]),
            "closed": False,
        }
