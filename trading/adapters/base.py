"""The live-venue contract, its errors, the live-trading gate and exchange-state translation.

A live venue is asynchronous (every call is a network round trip) and, like ``PaperVenue``, it
reports what happened as ``VenueEvent``s: it moves the engine ``Order`` through its state machine
(``transition``/``fill``) and hands back the events; the caller books fills and persists. Nothing
here touches storage.

Exchange state arrives as a ``VenueOrderState`` snapshot (cumulative figures, optionally the
order's trades). ``apply_state`` turns a snapshot into events idempotently: fills are the growth
of the filled quantity since the order's own ``filled_quantity``, so applying the same snapshot
twice, or after a restart that reloaded the order, books nothing twice.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from trading.engine.errors import TradingError
from trading.engine.money import ZERO
from trading.engine.orders import Fill, Liquidity, Order, OrderStatus
from trading.engine.venue import VenueEvent, VenueEventKind

logger = logging.getLogger(__name__)

LIVE_MODE = "live"
# Order.metadata key holding the venue's cumulative quote cost last booked (a str Decimal), so
# the price of the next fill delta is exact across restarts when metadata is persisted.
VENUE_COST_KEY = "venue_filled_cost"


# --------------------------------------------------------------------------------------- errors


class LiveVenueError(TradingError):
    """Base class of live-venue errors."""


class VenueConfigError(LiveVenueError, ValueError):
    """Raise when a live venue is configured inconsistently (unknown exchange, no keys, ...)."""


class VenueAuthError(LiveVenueError):
    """Raise when the exchange refuses the credentials or the permission; retrying cannot help."""


class VenueUnavailable(LiveVenueError):
    """Raise when retries are spent on network errors; the order's fate is unknown until
    reconciled (it stays ``pending``)."""


class LiveTradingBlocked(LiveVenueError):
    """Raise when live trading is requested but a condition is missing; ``blockers`` lists them."""

    def __init__(self, blockers: Sequence[str]) -> None:
        super().__init__("live trading is blocked: " + "; ".join(blockers))
        self.blockers = list(blockers)


# ---------------------------------------------------------------------------------------- gate


def live_trading_blockers(
    live_trading_env: bool, keys_present: bool, account_mode: str, *, venue: str = ""
) -> list[str]:
    """Return every missing condition for live trading (an empty list means it is allowed)."""
    where = f"{venue} " if venue else "the venue's "
    blockers = []
    if not live_trading_env:
        blockers.append("LIVE_TRADING is not true (set LIVE_TRADING=true in the environment)")
    if not keys_present:
        blockers.append(f"{where}API key and secret are not both set")
    if account_mode.strip().lower() != LIVE_MODE:
        blockers.append(f"the account is in {account_mode or 'no'} mode, not {LIVE_MODE}")
    return blockers


def require_live_trading(live_trading_env: bool, keys_present: bool, account_mode: str) -> None:
    """Raise ``LiveTradingBlocked`` unless every live-trading condition holds."""
    blockers = live_trading_blockers(live_trading_env, keys_present, account_mode)
    if blockers:
        raise LiveTradingBlocked(blockers)


# ------------------------------------------------------------------------------------ retrying


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential back-off for network errors (``jitter`` is a fraction of the delay)."""

    max_retries: int = 4
    initial: float = 0.5
    maximum: float = 8.0
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.initial <= 0 or self.maximum < self.initial:
            raise VenueConfigError("need max_retries >= 0 and 0 < initial <= maximum")
        if self.factor < 1 or not 0 <= self.jitter <= 1:
            raise VenueConfigError("need factor >= 1 and 0 <= jitter <= 1")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the seconds to wait before retry number ``attempt`` (zero-based)."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        if not self.jitter:
            return base
        # Jitter keeps many clients from retrying in lockstep against a struggling venue.
        return base * (1.0 - self.jitter * (rng or random).random())


# ------------------------------------------------------------------------------ exchange state


class VenueOrderStatus(StrEnum):
    """An order's status at the exchange (ccxt's unified vocabulary)."""

    OPEN = "open"
    CLOSED = "closed"  # fully executed
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class VenueTrade:
    """One execution reported by the exchange; ``fee`` is in the quote currency."""

    trade_id: str
    venue_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal | None
    liquidity: Liquidity | None
    ts: datetime | None


@dataclass(frozen=True, slots=True)
class VenueOrderState:
    """An exchange's view of one order: cumulative figures (fee and cost in quote currency)."""

    venue_order_id: str
    client_order_id: str
    symbol: str
    side: str
    status: VenueOrderStatus
    quantity: Decimal | None
    filled: Decimal
    price: Decimal | None = None
    average: Decimal | None = None
    cost: Decimal | None = None
    fee: Decimal | None = None
    ts: datetime | None = None
    trades: tuple[VenueTrade, ...] = ()


@dataclass(frozen=True, slots=True)
class Balance:
    """Holdings of one currency at the exchange."""

    currency: str
    free: Decimal
    used: Decimal
    total: Decimal


@dataclass(slots=True)
class Reconciliation:
    """What reconciling our open orders found: events to apply, orders the venue does not know."""

    events: list[VenueEvent] = field(default_factory=list)
    missing: list[Order] = field(default_factory=list)


class LiveVenue(Protocol):
    """What the runtime needs from a live exchange (``CcxtLiveVenue`` implements it)."""

    name: str

    async def submit(self, order: Order) -> list[VenueEvent]:
        """Place a pending order idempotently (by its client order id)."""
        ...

    async def cancel(self, order: Order, reason: str = "cancelled by request") -> list[VenueEvent]:
        """Cancel a working order and report its final state."""
        ...

    async def fetch_order(self, order: Order) -> list[VenueEvent]:
        """Fetch the order's exchange state and return the events it implies."""
        ...

    async def reconcile(self, orders: Sequence[Order]) -> Reconciliation:
        """Bring our non-terminal orders in line with the exchange."""
        ...

    async def open_orders(self, symbols: Sequence[str]) -> list[VenueOrderState]:
        """Return the exchange's open orders for ``symbols``."""
        ...

    async def my_trades(
        self, symbol: str, since: datetime | None = None, limit: int | None = None
    ) -> list[VenueTrade]:
        """Return the account's executions on ``symbol``."""
        ...

    async def balance(self) -> dict[str, Balance]:
        """Return holdings per currency."""
        ...

    async def close(self) -> None:
        """Release network resources."""
        ...


# ------------------------------------------------------------------------------- translation


def reject(order: Order, reason: str, ts: datetime) -> list[VenueEvent]:
    """Reject a pending order with ``reason`` and return the event."""
    order.transition(OrderStatus.REJECTED, ts, reason)
    return [VenueEvent(VenueEventKind.REJECTED, order, ts, order.status, reason=reason)]


def apply_state(
    order: Order, state: VenueOrderState, now: datetime, *, reason: str = ""
) -> list[VenueEvent]:
    """Move ``order`` to the exchange's ``state``; return the events (idempotent)."""
    if state.client_order_id and state.client_order_id != order.client_order_id:
        raise LiveVenueError(
            f"venue order {state.venue_order_id} belongs to {state.client_order_id!r}, "
            f"not {order.client_order_id!r}"
        )
    if order.venue_order_id and order.venue_order_id != state.venue_order_id:
        raise LiveVenueError(
            f"order {order.client_order_id} is venue order {order.venue_order_id}, "
            f"the exchange reported {state.venue_order_id}"
        )
    order.venue_order_id = state.venue_order_id
    if order.is_terminal:
        return []
    ts = state.ts or now
    if order.status is OrderStatus.PENDING:
        if state.status is VenueOrderStatus.REJECTED and state.filled <= 0:
            return reject(order, reason or "rejected by the venue", ts)
        order.transition(OrderStatus.OPEN, ts)
        events = [VenueEvent(VenueEventKind.ACCEPTED, order, ts, order.status)]
    else:
        events = []
    for fill in fills_from_state(order, state, now):
        order.fill(fill.quantity, fill.price, fill.fee, fill.ts)
        events.append(VenueEvent(VenueEventKind.FILL, order, fill.ts, order.status, fill))
    if state.cost is not None:
        order.metadata[VENUE_COST_KEY] = str(state.cost)
    _finish(order, state, ts, reason, events)
    return events


def _finish(
    order: Order, state: VenueOrderState, ts: datetime, reason: str, events: list[VenueEvent]
) -> None:
    """End a working order the exchange has finished with (after its fills are booked)."""
    status = state.status
    if order.is_terminal or status is VenueOrderStatus.OPEN:
        return
    if status is VenueOrderStatus.EXPIRED:
        kind, target, why = VenueEventKind.EXPIRED, OrderStatus.EXPIRED, "expired at the venue"
    elif status is VenueOrderStatus.CANCELED:
        kind, target, why = VenueEventKind.CANCELLED, OrderStatus.CANCELLED, "cancelled at venue"
    elif status is VenueOrderStatus.CLOSED:
        # Closed with a remainder: the venue executed less than we asked and will do no more.
        kind, target = VenueEventKind.CANCELLED, OrderStatus.CANCELLED
        why = f"closed at the venue with {order.remaining} unfilled"
    else:
        kind, target = VenueEventKind.CANCELLED, OrderStatus.CANCELLED
        why = "rejected by the venue after acceptance"
    text = reason or why
    order.transition(target, ts, text)
    events.append(VenueEvent(kind, order, ts, order.status, reason=text))


def fills_from_state(order: Order, state: VenueOrderState, now: datetime) -> list[Fill]:
    """Return the fills ``state`` adds to ``order`` (per trade when the trades line up)."""
    have = order.filled_quantity
    target = state.filled
    if order.quantity < target:
        logger.error(
            "venue reports %s filled on order %s of %s; booking only up to the order quantity",
            target,
            order.client_order_id,
            order.quantity,
        )
        target = order.quantity
    delta = target - have
    if delta <= 0:
        return []
    fresh = _fresh_trades(have, delta, state.trades)
    if fresh is not None:
        return [_trade_fill(order, t, state, now) for t in fresh]
    return [_aggregate_fill(order, state, target, delta, now)]


def _fresh_trades(
    have: Decimal, delta: Decimal, trades: Sequence[VenueTrade]
) -> list[VenueTrade] | None:
    """Return the trades that make up exactly ``delta`` after the ``have`` already booked."""
    if not trades:
        return None
    # Stable sort: trades stamped alike keep the exchange's order; unstamped ones go last.
    ordered = sorted(trades, key=lambda t: (t.ts is None, t.ts or datetime.min))
    booked = ZERO
    fresh: list[VenueTrade] = []
    taken = ZERO
    for trade in ordered:
        if trade.quantity <= 0 or trade.price <= 0 or not trade.trade_id:
            return None
        if booked < have:
            booked += trade.quantity
            if booked > have:
                return None  # our earlier fills were not cut at trade boundaries
        elif taken < delta:
            fresh.append(trade)
            taken += trade.quantity
    return fresh if booked == have and taken == delta else None


def _trade_fill(order: Order, trade: VenueTrade, state: VenueOrderState, now: datetime) -> Fill:
    ts = trade.ts or state.ts or now
    return Fill(
        order.client_order_id,
        order.symbol,
        order.side,
        trade.quantity,
        trade.price,
        trade.fee if trade.fee is not None else ZERO,
        trade.liquidity or _default_liquidity(order),
        ts,
        trade.trade_id,
        order.account,
        order.strategy,
    )


def _aggregate_fill(
    order: Order, state: VenueOrderState, target: Decimal, delta: Decimal, now: datetime
) -> Fill:
    """Price the filled-quantity growth from the venue's cumulative cost (else its average)."""
    price: Decimal | None = None
    if state.cost is not None:
        price = (state.cost - _booked_cost(order)) / delta
    if price is None or price <= 0:
        price = state.average if state.average is not None and state.average > 0 else None
    if price is None:
        price = order.price
    if price is None or price <= 0:
        raise LiveVenueError(f"cannot price the fill of {delta} on {order.client_order_id}")
    fee = ZERO
    if state.fee is not None and state.fee > order.fees:
        fee = state.fee - order.fees
    ts = state.ts or now
    # Cumulative filled quantity makes the id unique per order and stable across restarts.
    trade_id = f"{state.venue_order_id}:{_plain(target)}"
    return Fill(
        order.client_order_id,
        order.symbol,
        order.side,
        delta,
        price,
        fee,
        _default_liquidity(order),
        ts,
        trade_id,
        order.account,
        order.strategy,
    )


def _booked_cost(order: Order) -> Decimal:
    stored = order.metadata.get(VENUE_COST_KEY)
    if stored is not None:
        return Decimal(str(stored))
    if order.avg_fill_price is None:
        return ZERO
    return order.avg_fill_price * order.filled_quantity


def _default_liquidity(order: Order) -> Liquidity:
    # Without the venue's word, orders with no limit price took liquidity; limits are assumed
    # to have rested. Fees come from the venue either way; this is informational.
    return Liquidity.TAKER if order.price is None else Liquidity.MAKER


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


__all__ = [
    "LIVE_MODE",
    "VENUE_COST_KEY",
    "Balance",
    "LiveTradingBlocked",
    "LiveVenue",
    "LiveVenueError",
    "Reconciliation",
    "RetryPolicy",
    "VenueAuthError",
    "VenueConfigError",
    "VenueOrderState",
    "VenueOrderStatus",
    "VenueTrade",
    "VenueUnavailable",
    "apply_state",
    "fills_from_state",
    "live_trading_blockers",
    "reject",
    "require_live_trading",
]
