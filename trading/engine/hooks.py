"""The pre-trade hook: the contract between the trading engine and risk checks.

Every order the OMS accepts first passes ``PreTradeHook.check``. The trading engine ships
``AllowAllHook`` and ``HaltAwareHook``; ``risk.engine`` provides the real checks that satisfy the
same Protocol. Everything here is pure Python with Decimal money.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol


class TradingMode(StrEnum):
    """Per-account trading state (risk owns transitions; trading enforces them)."""

    ACTIVE = "active"
    REDUCING = "reducing"  # only risk-reducing orders pass
    HALTED = "halted"  # nothing new; open orders are cancelled


class Decision(StrEnum):
    """Outcome of a pre-trade check."""

    APPROVE = "approve"
    REDUCE = "reduce"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class OrderProposal:
    """What a check needs to know about an order before it is accepted."""

    account: str
    symbol: str
    side: str  # "buy" | "sell"
    quantity: Decimal  # positive
    order_type: str  # market | limit | stop | stop_limit | take_profit | trailing_stop
    reference_price: Decimal  # mark/mid used for notional
    limit_price: Decimal | None = None
    strategy: str = ""
    reduce_only: bool = False
    ts: datetime | None = None

    @property
    def signed_quantity(self) -> Decimal:
        """Return +quantity for buys, -quantity for sells."""
        return self.quantity if self.side == "buy" else -self.quantity

    @property
    def notional(self) -> Decimal:
        """Return quantity × reference price."""
        return self.quantity * self.reference_price


@dataclass(frozen=True, slots=True)
class PositionView:
    """A position as checks see it: signed quantity, average entry and current mark."""

    symbol: str
    quantity: Decimal
    avg_price: Decimal
    mark_price: Decimal

    @property
    def market_value(self) -> Decimal:
        """Return signed quantity × mark."""
        return self.quantity * self.mark_price


@dataclass(frozen=True, slots=True)
class AccountView:
    """Read-only account state handed to checks."""

    name: str
    cash: Decimal
    equity: Decimal
    peak_equity: Decimal
    day_start_equity: Decimal
    positions: Mapping[str, PositionView] = field(default_factory=dict)
    open_orders: int = 0
    mode: TradingMode = TradingMode.ACTIVE

    @property
    def gross_exposure(self) -> Decimal:
        """Return the sum of absolute position values."""
        return sum((abs(p.market_value) for p in self.positions.values()), Decimal(0))

    @property
    def net_exposure(self) -> Decimal:
        """Return the sum of signed position values."""
        return sum((p.market_value for p in self.positions.values()), Decimal(0))


@dataclass(frozen=True, slots=True)
class PreTradeResult:
    """Approve, reduce to ``quantity``, or reject with a reason naming the limit."""

    decision: Decision
    quantity: Decimal
    reason: str = ""
    limit: str = ""

    @property
    def accepted(self) -> bool:
        """Return True unless the order was rejected."""
        return self.decision is not Decision.REJECT


def is_risk_reducing(order: OrderProposal, account: AccountView) -> bool:
    """Return True if the order only shrinks an existing position (never flips or grows it)."""
    pos = account.positions.get(order.symbol)
    held = pos.quantity if pos else Decimal(0)
    if held == 0:
        return False
    after = held + order.signed_quantity
    return abs(after) < abs(held) and (after == 0 or (after > 0) == (held > 0))


class PreTradeHook(Protocol):
    """Anything that can approve, reduce or reject an order proposal."""

    def check(self, order: OrderProposal, account: AccountView) -> PreTradeResult:
        """Decide on ``order`` given ``account``."""
        ...


class AllowAllHook:
    """Approves everything: for tests and the bare engine."""

    def check(self, order: OrderProposal, account: AccountView) -> PreTradeResult:
        """Approve ``order`` unchanged."""
        return PreTradeResult(Decision.APPROVE, order.quantity)


class HaltAwareHook:
    """Enforces trading modes only.

    ``reducing`` lets risk-reducing orders through; ``halted`` lets through only orders flagged
    ``reduce_only`` that reduce (the kill switch's flattening orders); ``active`` approves all.
    """

    def check(self, order: OrderProposal, account: AccountView) -> PreTradeResult:
        """Reject orders the account's trading mode does not allow."""
        mode = account.mode
        reducing = is_risk_reducing(order, account)
        if mode is TradingMode.ACTIVE or (mode is TradingMode.REDUCING and reducing):
            return PreTradeResult(Decision.APPROVE, order.quantity)
        if mode is TradingMode.HALTED and reducing and order.reduce_only:
            return PreTradeResult(Decision.APPROVE, order.quantity)
        reason = f"account {mode.value}: only risk-reducing orders are accepted"
        if mode is TradingMode.HALTED:
            reason = "account halted: no new orders"
        return PreTradeResult(Decision.REJECT, Decimal(0), reason, "trading_state")
