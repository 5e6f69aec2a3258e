"""Builders for risk-engine tests: accounts, positions, orders and limits from short literals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

from risk.engine.limits import LimitSpec
from trading.engine.hooks import AccountView, OrderProposal, PositionView, TradingMode

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def position(symbol: str, qty: str, mark: str) -> PositionView:
    """Return a position marked (and entered) at ``mark``."""
    return PositionView(symbol, D(qty), D(mark), D(mark))


def account(
    equity: str = "100000",
    *positions: PositionView,
    open_orders: int = 0,
    mode: TradingMode = TradingMode.ACTIVE,
    peak: str | None = None,
    day_start: str | None = None,
    name: str = "acct",
) -> AccountView:
    """Return an account whose peak and day start default to its equity."""
    return AccountView(
        name=name,
        cash=D(equity),
        equity=D(equity),
        peak_equity=D(peak or equity),
        day_start_equity=D(day_start or equity),
        positions={p.symbol: p for p in positions},
        open_orders=open_orders,
        mode=mode,
    )


def order(
    side: str = "buy",
    qty: str = "1",
    price: str = "100",
    symbol: str = "BTC-USD",
    *,
    limit: str | None = None,
    strategy: str = "",
    reduce_only: bool = False,
    ts: datetime | None = T0,
    name: str = "acct",
) -> OrderProposal:
    """Return an order proposal (limit order when ``limit`` is given)."""
    return OrderProposal(
        account=name,
        symbol=symbol,
        side=side,
        quantity=D(qty),
        order_type="limit" if limit else "market",
        reference_price=D(price),
        limit_price=D(limit) if limit else None,
        strategy=strategy,
        reduce_only=reduce_only,
        ts=ts,
    )


def spec(
    kind: str,
    value: str,
    action: str = "reject",
    scope: str = "global",
    scope_value: str = "",
    **params: Any,
) -> LimitSpec:
    """Return a limit spec from strings, as the ORM would hand it over."""
    return LimitSpec(kind, D(value), action, scope, scope_value, True, params)  # type: ignore[arg-type]
