"""Orders, fills and the order state machine.

An ``Order`` is mutable (its status and fill totals move) but only through ``transition``,
``fill`` and ``resize``, which enforce the state machine::

    pending -> open -> partially_filled -> filled
    pending -> rejected | cancelled | expired
    open | partially_filled -> cancelled | expired

``filled`` and ``partially_filled`` are reached only through ``fill`` so the fill totals and the
status can never disagree. The enum string values are the ones the ORM stores.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import partial
from itertools import count, repeat
from typing import Any
from uuid import uuid4

from marketdata.engine.records import compile_builder, fast_init
from trading.engine.errors import IllegalTransition, OrderRejected, OverFill
from trading.engine.money import HUNDRED, ZERO


class OrderSide(StrEnum):
    """Direction of an order."""

    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> OrderSide:
        """Return the other side."""
        return _SELL if self is _BUY else _BUY


class OrderType(StrEnum):
    """How an order executes."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TAKE_PROFIT = "take_profit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(StrEnum):
    """How long an order stays working."""

    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    DAY = "day"


class OrderStatus(StrEnum):
    """Lifecycle state of an order."""

    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Liquidity(StrEnum):
    """Whether a fill added liquidity (maker) or took it (taker)."""

    MAKER = "maker"
    TAKER = "taker"


TRIGGER_TYPES = frozenset(
    {OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT, OrderType.TRAILING_STOP}
)
TERMINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)
WORKING_STATUSES = frozenset({OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED})

# Members used on the order path, as module constants: in Python 3.11 reading a member off its
# Enum class goes through the metaclass (about 0.1 µs each), dozens of times per order.
_BUY, _SELL = OrderSide.BUY, OrderSide.SELL
_MARKET, _LIMIT, _STOP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP
_STOP_LIMIT, _TAKE_PROFIT = OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT
_TRAILING_STOP = OrderType.TRAILING_STOP
_PENDING, _FILLED = OrderStatus.PENDING, OrderStatus.FILLED
_PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED

# Targets reachable through ``Order.transition``; FILLED/PARTIALLY_FILLED only through ``fill``.
_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {OrderStatus.OPEN, OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.OPEN: frozenset({OrderStatus.CANCELLED, OrderStatus.EXPIRED}),
    OrderStatus.PARTIALLY_FILLED: frozenset({OrderStatus.CANCELLED, OrderStatus.EXPIRED}),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


def new_order_id() -> str:
    """Return a fresh random client order id (uuid4 hex)."""
    return uuid4().hex


IdFactory = Callable[[], str]


class SequentialIds(partial):
    """Deterministic id factory: ``prefix`` followed by a zero-padded counter.

    A ``functools.partial`` of ``next`` over a ``map`` that ``%``-formats a counter, so a call
    runs in C: called once or twice per order (the OMS, strategy contexts), a Python
    ``__call__`` cost about 3k instructions an id, most of it the call itself. ``next`` and
    ``operator.mod`` take their arguments as they are; the bound ``map.__next__`` and
    ``pattern.__mod__`` of before each packed them into a tuple first (half the cost of an id).
    """

    __slots__ = ()

    def __new__(cls, prefix: str = "o", start: int = 1) -> SequentialIds:
        pattern = prefix.replace("%", "%%") + "%08d"
        return super().__new__(cls, next, map(operator.mod, repeat(pattern), count(start)))

    def __reduce__(self) -> tuple[Callable[..., SequentialIds], tuple[Iterator[str]]]:
        return _resume_ids, self.args  # pickled with its counter where it stands


def _resume_ids(ids: Iterator[str] | Callable[[], str]) -> SequentialIds:
    if not hasattr(ids, "__next__"):  # pickled by the earlier form: the map's bound __next__
        ids = ids.__self__  # type: ignore[union-attr]
    return partial.__new__(SequentialIds, next, ids)


@dataclass(slots=True, eq=False, kw_only=True)
class Order:
    """One order and its fill totals; identity is ``client_order_id``."""

    symbol: str
    side: OrderSide
    quantity: Decimal
    type: OrderType = OrderType.MARKET
    account: str = ""
    client_order_id: str = field(default_factory=new_order_id)
    price: Decimal | None = None  # limit price (limit, stop_limit, take-profit-limit)
    stop_price: Decimal | None = None  # trigger price; the venue keeps a trailing stop's level here
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None  # in percent: Decimal("1.5") trails by 1.5 %
    tif: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    status: OrderStatus = OrderStatus.PENDING
    filled_quantity: Decimal = ZERO
    avg_fill_price: Decimal | None = None
    fees: Decimal = ZERO
    venue_order_id: str = ""
    strategy: str = ""
    signal: str = ""
    parent_id: str = ""  # bracket entry this order protects
    oco_group: str = ""  # the first fill of any member cancels the others
    triggered: bool = False
    created_ts: datetime | None = None
    updated_ts: datetime | None = None
    reject_reason: str = ""  # why it was rejected, cancelled or expired
    metadata: dict[str, Any] = field(default_factory=dict)
    # The venue's reference price when the OMS checked the order (its decision price, which
    # slippage is measured against); None for orders it did not check (restored, children).
    reference_price: Decimal | None = None

    def __post_init__(self) -> None:
        # Records rebuilt from the ORM carry plain strings; the engine compares enum identities.
        if self.side.__class__ is not OrderSide:
            self.side = OrderSide(self.side)
        if self.type.__class__ is not OrderType:
            self.type = OrderType(self.type)
        if self.tif.__class__ is not TimeInForce:
            self.tif = TimeInForce(self.tif)
        if self.status.__class__ is not OrderStatus:
            self.status = OrderStatus(self.status)

    @property
    def remaining(self) -> Decimal:
        """Return the quantity still to fill."""
        return self.quantity - self.filled_quantity

    @property
    def is_terminal(self) -> bool:
        """Return True once the order can no longer change."""
        return self.status in TERMINAL_STATUSES

    @property
    def is_working(self) -> bool:
        """Return True while the order is open at the venue (possibly partly filled)."""
        return self.status in WORKING_STATUSES

    @property
    def sign(self) -> int:
        """Return +1 for buys and -1 for sells."""
        return 1 if self.side is _BUY else -1

    def transition(self, status: OrderStatus, ts: datetime | None, reason: str = "") -> None:
        """Move to ``status`` (not filled/partially_filled: use ``fill``), or raise."""
        if status not in _TRANSITIONS[self.status]:
            raise IllegalTransition(
                f"order {self.client_order_id}: {self.status.value} -> {status.value}"
            )
        self.status = status
        self.updated_ts = ts
        if reason:
            self.reject_reason = reason

    def fill(self, quantity: Decimal, price: Decimal, fee: Decimal, ts: datetime | None) -> None:
        """Record an execution of ``quantity`` at ``price``; raise on over-fill or bad state."""
        if self.status not in WORKING_STATUSES:
            raise IllegalTransition(
                f"order {self.client_order_id}: cannot fill while {self.status.value}"
            )
        if quantity <= ZERO:
            raise OverFill(f"order {self.client_order_id}: fill quantity must be positive")
        filled = self.filled_quantity + quantity
        full = filled == self.quantity  # the common case: one comparison, no second
        if not full and filled > self.quantity:
            raise OverFill(
                f"order {self.client_order_id}: fill {quantity} exceeds remaining {self.remaining}"
            )
        prev = self.avg_fill_price
        # Informational average; the exact money lives in Fill and Portfolio.
        self.avg_fill_price = (
            price if prev is None else (prev * self.filled_quantity + price * quantity) / filled
        )
        self.filled_quantity = filled
        self.fees += fee
        self.updated_ts = ts
        self.status = _FILLED if full else _PARTIALLY_FILLED

    def resize(self, quantity: Decimal, ts: datetime | None) -> None:
        """Change the order quantity (never below what is already filled)."""
        if self.is_terminal:
            raise IllegalTransition(
                f"order {self.client_order_id}: cannot resize while {self.status.value}"
            )
        if quantity <= ZERO or quantity < self.filled_quantity:
            raise OverFill(
                f"order {self.client_order_id}: new quantity {quantity} below filled "
                f"{self.filled_quantity} or not positive"
            )
        self.quantity = quantity
        self.updated_ts = ts
        if self.status is OrderStatus.PARTIALLY_FILLED and quantity == self.filled_quantity:
            self.status = OrderStatus.FILLED


@fast_init
@dataclass(frozen=True, slots=True)
class Fill:
    """One execution against an order."""

    order_id: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    price: Decimal
    fee: Decimal
    liquidity: Liquidity
    ts: datetime
    venue_trade_id: str = ""
    account: str = ""
    strategy: str = ""

    @property
    def signed_quantity(self) -> Decimal:
        """Return +quantity for buys, -quantity for sells."""
        return self.quantity if self.side is _BUY else -self.quantity

    @property
    def notional(self) -> Decimal:
        """Return quantity × price."""
        return self.quantity * self.price


@fast_init
@dataclass(frozen=True, slots=True, kw_only=True)
class OrderIntent:
    """What a strategy or a user asks for; the OMS turns it into an ``Order``.

    ``stop_loss`` / ``take_profit`` make it a bracket: the entry gets a reduce-only stop and a
    reduce-only limit on the other side that activate as the entry fills and cancel each other.
    """

    account: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    type: OrderType = OrderType.MARKET
    price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    tif: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    strategy: str = ""
    signal: str = ""
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    oco_group: str = ""
    client_order_id: str = ""  # empty: the OMS assigns one
    metadata: dict[str, Any] | None = None

    def to_order(self, client_order_id: str, now: datetime | None) -> Order:
        """Build the pending ``Order`` for this intent (its own id, else ``client_order_id``)."""
        return order_from_intent(self, client_order_id, now)


def _positive(value: Decimal | None) -> bool:
    return value is not None and value.is_finite() and value > ZERO


def _check_prices(order: Order) -> None:
    kind = order.type
    if kind is _MARKET and (order.price is not None or order.stop_price is not None):
        raise OrderRejected("market orders take no price or stop price")
    if kind in (_LIMIT, _STOP_LIMIT) and not _positive(order.price):
        raise OrderRejected(f"{kind.value} orders need a positive price")
    if kind in (_STOP, _STOP_LIMIT, _TAKE_PROFIT):
        if not _positive(order.stop_price):
            raise OrderRejected(f"{kind.value} orders need a positive stop_price")
    if kind is _STOP and order.price is not None:
        raise OrderRejected("stop orders take no limit price; use stop_limit")
    if kind is _TAKE_PROFIT and order.price is not None and not _positive(order.price):
        raise OrderRejected("take_profit limit price must be positive")
    if kind is _LIMIT and order.stop_price is not None:
        raise OrderRejected("limit orders take no stop_price")


def _check_trailing(order: Order) -> None:
    has_amount = order.trail_amount is not None
    has_percent = order.trail_percent is not None
    if order.type is not _TRAILING_STOP:
        if has_amount or has_percent:
            raise OrderRejected("trail_amount/trail_percent apply to trailing_stop orders only")
        return
    if has_amount == has_percent:
        raise OrderRejected("trailing_stop needs exactly one of trail_amount or trail_percent")
    if has_amount and not _positive(order.trail_amount):
        raise OrderRejected("trail_amount must be positive")
    if has_percent and not (_positive(order.trail_percent) and order.trail_percent < HUNDRED):
        raise OrderRejected("trail_percent must be in (0, 100)")
    if order.price is not None:
        raise OrderRejected("trailing_stop orders take no limit price")


def validate_order(order: Order) -> None:
    """Raise ``OrderRejected`` unless ``order`` is a well-formed new order."""
    if not order.symbol:
        raise OrderRejected("symbol is required")
    qty = order.quantity  # ``_positive``, written out (every order passes here)
    if not isinstance(qty, Decimal) or not (qty.is_finite() and qty > ZERO):
        raise OrderRejected("quantity must be a positive Decimal")
    if order.status is not _PENDING or order.filled_quantity != ZERO:
        raise OrderRejected("only new pending orders can be submitted")
    if order.type is _MARKET and order.price is None and order.stop_price is None:
        if order.trail_amount is None and order.trail_percent is None:
            return  # a plain market order (most orders): nothing else to check
    _check_prices(order)
    _check_trailing(order)


# The fields an order takes from its intent (the rest start at their defaults).
_ORDER_FROM_INTENT = (
    "symbol",
    "side",
    "quantity",
    "type",
    "account",
    "price",
    "stop_price",
    "trail_amount",
    "trail_percent",
    "tif",
    "reduce_only",
    "strategy",
    "signal",
    "oco_group",
)


order_from_intent: Callable[[OrderIntent, str, datetime | None], Order] = compile_builder(
    Order,
    "order_from_intent",
    "intent, client_order_id, now",
    {
        **{name: f"intent.{name}" for name in _ORDER_FROM_INTENT},
        "client_order_id": "intent.client_order_id or client_order_id",
        "created_ts": "now",
        "updated_ts": "now",
        "metadata": "dict(intent.metadata) if intent.metadata else {}",
    },
    namespace={"_Side": OrderSide, "_Type": OrderType, "_Tif": TimeInForce},
    # Records rebuilt from strings (the API's) need the enums: ``__post_init__`` converts them.
    after="if obj.side.__class__ is not _Side or obj.type.__class__ is not _Type "
    "or obj.tif.__class__ is not _Tif: obj.__post_init__()",
)
"""Return the pending ``Order`` for ``intent`` (its own id, else ``client_order_id``), built
without the class call: one ``Order`` per order sent, and the generated ``__init__`` (26 fields,
keyword matching, two default factories) costs more than the rest of a submit. Tests compare it
with ``Order(...)`` field by field."""
