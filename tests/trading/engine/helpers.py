"""Builders shared by the trading-engine tests (plain functions, no fixtures magic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from marketdata.engine.events import Bar, BookSnapshot, Quote, Trade
from trading.engine.orders import Order, OrderSide, OrderType, TimeInForce

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SYM = "BTC-USD"
D = Decimal


def at(seconds: float = 0) -> datetime:
    """Return T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def trade(price: float, size: float = 1.0, t: float = 0, symbol: str = SYM) -> Trade:
    """Build a trade print."""
    return Trade(symbol=symbol, ts=at(t), price=price, size=size)


def quote(bid: float, ask: float, size: float = 1.0, t: float = 0, symbol: str = SYM) -> Quote:
    """Build a quote."""
    return Quote(symbol=symbol, ts=at(t), bid=bid, bid_size=size, ask=ask, ask_size=size)


def book(
    bids: list[tuple[float, float]],
    asks: list[tuple[float, float]],
    t: float = 0,
    symbol: str = SYM,
) -> BookSnapshot:
    """Build a book snapshot."""
    return BookSnapshot(symbol=symbol, ts=at(t), bids=tuple(bids), asks=tuple(asks))


def bar(
    o: float,
    h: float,
    lo: float,
    c: float,
    v: float = 100.0,
    i: int = 0,
    symbol: str = SYM,
    timeframe: str = "1m",
) -> Bar:
    """Build the ``i``-th one-minute bar after T0."""
    return Bar(
        symbol=symbol,
        timeframe=timeframe,
        ts=T0 + timedelta(minutes=i),
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
    )


def order(
    side: str = "buy",
    qty: str = "1",
    type: str = "market",  # noqa: A002
    price: str | None = None,
    stop: str | None = None,
    tif: str = "gtc",
    oid: str = "",
    account: str = "acct",
    **kwargs: object,
) -> Order:
    """Build a pending order from short string arguments."""
    extra = {"client_order_id": oid} if oid else {}
    return Order(
        symbol=kwargs.pop("symbol", SYM),  # type: ignore[arg-type]
        side=OrderSide(side),
        quantity=D(qty),
        type=OrderType(type),
        price=D(price) if price is not None else None,
        stop_price=D(stop) if stop is not None else None,
        tif=TimeInForce(tif),
        account=account,
        created_ts=T0,
        **extra,
        **kwargs,  # type: ignore[arg-type]
    )
