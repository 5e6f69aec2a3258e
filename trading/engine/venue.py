"""``PaperVenue``: the deterministic matching engine shared by paper trading and backtests.

Market data drives it (``on_book``, ``on_quote``, ``on_trade``, ``on_bar``) and every call returns
the ``VenueEvent``s it caused, in order; nothing is pushed anywhere else. Matching rules:

* market orders, and limit orders that cross, take liquidity level by level (taker fees); what the
  book cannot fill is cancelled (market, IOC), kills the whole order first (FOK) or rests (limit);
* resting limits fill as makers at their own price when a later trade prints at or through them,
  never more than the print's size (shared by our orders, best price first, then time);
* stop / stop-limit / take-profit / trailing stops trigger on trade prints, then execute as a
  market order (or as a limit when they carry a ``price``);
* DAY orders expire at the end of their UTC day; ``latency`` delays activation in event time;
* reduce-only orders never fill beyond the opposite position reported by the position lookup;
* with a fill guard bound (the OMS binds the accounts' buying power, ``buying_power``), no fill
  goes beyond what the account can pay for at the fill price, fee included: the guard's cut is
  filled and the rest of the order cancelled with the guard's reason;
* a bracket entry's children activate as the entry fills (sized to its filled quantity) and
  share an OCO group: the first fill of one cancels the other.

Bars are replayed as a price path — open, high, low, close for a down bar and open, low, high,
close otherwise, with every trigger level crossed on the way printed at that level — all stamped
with the bar's start and sharing the bar's volume as the size cap for maker fills. Without a real
book the venue quotes a synthetic book around each print (``synthetic_spread_bps`` wide,
``synthetic_depth`` deep, unlimited by default).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from itertools import count
from typing import Protocol

from marketdata.engine.events import TIMEFRAME_SECONDS, Bar, BookSnapshot, Quote, Trade
from marketdata.engine.records import fast_init, record_builder
from trading.engine import money as _money
from trading.engine.book import PaperBook, to_size
from trading.engine.buying_power import FillGuard
from trading.engine.errors import OrderRejected, UnknownOrder
from trading.engine.money import FEE_STEP, HUNDRED, ZERO, fee_for, to_decimal
from trading.engine.orders import (
    TERMINAL_STATUSES,
    TRIGGER_TYPES,
    WORKING_STATUSES,
    Fill,
    Liquidity,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    validate_order,
)

PositionLookup = Callable[[str, str], Decimal]
"""``(account, symbol) -> signed position quantity`` as of the last applied fill."""

_ONE_DAY = timedelta(days=1)
BAR_LENGTH = {tf: timedelta(seconds=secs) for tf, secs in TIMEFRAME_SECONDS.items()}
_BUY = OrderSide.BUY


class VenueEventKind(StrEnum):
    """What happened to an order at the venue."""

    ACCEPTED = "accepted"
    TRIGGERED = "triggered"
    AMENDED = "amended"
    FILL = "fill"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


# Enum members as module constants: reading one off its class costs a metaclass lookup in 3.11.
_MAKER, _TAKER = Liquidity.MAKER, Liquidity.TAKER
_PENDING, _OPEN, _FILLED = OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.FILLED
_CANCELLED, _REJECTED, _EXPIRED = OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED
_WORKING, _TERMINAL = WORKING_STATUSES, TERMINAL_STATUSES
_FOK, _IOC, _DAY = TimeInForce.FOK, TimeInForce.IOC, TimeInForce.DAY
_TRAILING_STOP = OrderType.TRAILING_STOP
_new_fill = record_builder(Fill)  # ``Fill(...)``, built faster (one per execution)


@fast_init
@dataclass(frozen=True, slots=True)
class VenueEvent:
    """One change to one order; ``status`` is the order's status when it happened."""

    kind: VenueEventKind
    order: Order  # the live order object (no copy): read ``status`` for the state at the event
    ts: datetime | None
    status: OrderStatus
    fill: Fill | None = None
    reason: str = ""


_new_event = record_builder(VenueEvent)  # ``VenueEvent(...)``, built faster (several per order)
_EV_ACCEPTED, _EV_FILL = VenueEventKind.ACCEPTED, VenueEventKind.FILL
_EV_CANCELLED, _EV_EXPIRED = VenueEventKind.CANCELLED, VenueEventKind.EXPIRED


@dataclass(frozen=True, slots=True)
class VenueConfig:
    """Fees, latency and the synthetic book used when no real book is streamed."""

    name: str = "paper"
    maker_fee_bps: Decimal = ZERO
    taker_fee_bps: Decimal = ZERO
    latency: timedelta = timedelta(0)
    synthetic_spread_bps: Decimal = ZERO  # full spread around the last print
    synthetic_depth: Decimal | None = None  # size on each side; None means unlimited


class Venue(Protocol):
    """What the OMS needs from a venue (``PaperVenue`` is the reference implementation)."""

    def bind_positions(self, lookup: PositionLookup) -> None:
        """Set the position lookup used by reduce-only checks."""
        ...

    def submit(self, order: Order, now: datetime) -> list[VenueEvent]:
        """Accept, reject or execute a new order."""
        ...

    def submit_bracket(
        self, entry: Order, children: Sequence[Order], now: datetime
    ) -> list[VenueEvent]:
        """Submit an entry with children that activate as it fills."""
        ...

    def cancel(self, client_order_id: str, now: datetime, reason: str = "") -> list[VenueEvent]:
        """Cancel a working or pending order."""
        ...

    def restore(self, order: Order, now: datetime) -> list[VenueEvent]:
        """Re-place an order recovered from storage."""
        ...

    def reference_price(self, symbol: str) -> Decimal | None:
        """Return the current mid (or last) price."""
        ...

    def on_trade(self, trade: Trade) -> list[VenueEvent]:
        """Process a trade print."""
        ...

    def on_quote(self, quote: Quote) -> list[VenueEvent]:
        """Process a top-of-book quote."""
        ...

    def on_book(self, book: BookSnapshot) -> list[VenueEvent]:
        """Process a full book snapshot."""
        ...

    def on_bar(self, bar: Bar) -> list[VenueEvent]:
        """Process a bar."""
        ...

    def advance(self, now: datetime) -> list[VenueEvent]:
        """Let event time pass (latency activations, DAY expiry)."""
        ...


def _day_end(ts: datetime) -> datetime:
    utc = ts.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC) + _ONE_DAY


def _hits(order: Order, price: Decimal) -> bool:
    stop = order.stop_price
    if stop is None:
        return False
    buy = order.side is _BUY
    if order.type is OrderType.TAKE_PROFIT:
        return price <= stop if buy else price >= stop
    return price >= stop if buy else price <= stop


def book_fill(
    config: VenueConfig,
    order: Order,
    qty: Decimal,
    price: Decimal,
    liquidity: Liquidity,
    ts: datetime,
    name: str | None = None,
) -> Fill:
    """Fill ``qty`` of ``order`` at ``price``, charging ``config``'s fee; return the fill.

    How a simulated execution becomes a ``Fill`` (``name`` overrides the venue name in its
    trade id); ``BacktestVenue._fill_at_open`` writes it out for its fills at a bar's open
    (tests/backtesting/engine/test_fills.py holds the two to the same fills).
    """
    bps = config.maker_fee_bps if liquidity is _MAKER else config.taker_fee_bps
    if bps:  # ``fee_for``, written out while its remembered rate is this ``bps``'s (one call)
        known, rate = _money._last_rate
        fee = (
            (qty * price * rate).quantize(FEE_STEP, ROUND_HALF_EVEN)
            if bps is known
            else fee_for(qty, price, bps)
        )
    else:
        fee = ZERO
    order.fill(qty, price, fee, ts)
    return _new_fill(
        order.client_order_id,
        order.symbol,
        order.side,
        qty,
        price,
        fee,
        liquidity,
        ts,
        # Unique per order and restart-safe: filled quantity only ever grows. (``!s``: str() is
        # what format() gives a Decimal with no spec, at half the cost.)
        f"{name or config.name}:{order.client_order_id}:{order.filled_quantity!s}",
        order.account,
        order.strategy,
    )


class PaperVenue:
    """Deterministic paper matching engine (see the module docstring for the rules)."""

    def __init__(
        self, config: VenueConfig | None = None, *, positions: PositionLookup | None = None
    ) -> None:
        self.config = config or VenueConfig()
        self._positions = positions
        self._books: dict[str, PaperBook] = {}
        self._orders: dict[str, Order] = {}  # every non-terminal order held here
        self._resting: dict[str, list[Order]] = {}  # working limits, time order
        self._armed: dict[str, list[Order]] = {}  # untriggered stops, time order
        self._where: dict[str, list[Order]] = {}  # order id -> the list holding it
        self._anchors: dict[str, Decimal] = {}  # trailing stop: best price since armed
        self._children: dict[str, list[Order]] = {}  # bracket entry id -> its children
        self._oco: dict[str, list[Order]] = {}
        self._latent: list[tuple[datetime, int, Order]] = []  # heap by activation time
        self._expiries: list[tuple[datetime, int, Order]] = []  # heap of DAY order ends
        self._dirty: dict[str, Order] = {}  # entries whose children need syncing
        self._delta: dict[tuple[str, str], Decimal] = {}  # fills not yet seen by the lookup
        self._cash: dict[str, Decimal] = {}  # cash those fills moved, by account
        self._guard: FillGuard | None = None
        self._seq = count(1)  # tie-breaker for the time heaps

    # ----------------------------------------------------------------- public API

    def bind_positions(self, lookup: PositionLookup) -> None:
        """Set the ``(account, symbol) -> quantity`` lookup used by reduce-only orders."""
        self._positions = lookup

    def bind_guard(self, guard: FillGuard | None) -> None:
        """Set the buying-power guard every fill passes (None: fills are not limited)."""
        self._guard = guard

    def reference_price(self, symbol: str) -> Decimal | None:
        """Return the mid of the book (or the last print) for ``symbol``, if known."""
        book = self._books.get(symbol)
        return book.mid() if book else None

    def best_bid_ask(self, symbol: str) -> tuple[Decimal | None, Decimal | None]:
        """Return the best bid and ask prices for ``symbol`` (None where empty)."""
        book = self._books.get(symbol)
        if book is None:
            return None, None
        return (book.bids[0][0] if book.bids else None, book.asks[0][0] if book.asks else None)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Return the non-terminal orders the venue holds (pending included)."""
        return [o for o in self._orders.values() if symbol is None or o.symbol == symbol]

    def submit(self, order: Order, now: datetime) -> list[VenueEvent]:
        """Validate and accept ``order``; execute it at once unless latency delays it."""
        events = self._begin()
        self._submit(order, now, events)
        if self._dirty:
            self._flush(now, events)
        return events

    def submit_bracket(
        self, entry: Order, children: Sequence[Order], now: datetime
    ) -> list[VenueEvent]:
        """Submit ``entry`` with ``children`` (stop-loss / take-profit) that protect its fills."""
        events = self._begin()
        for child in children:
            child.parent_id = entry.client_order_id
            if len(children) > 1 and not child.oco_group:
                child.oco_group = entry.client_order_id
        try:
            for order in (entry, *children):
                self._precheck(order)
        except OrderRejected as exc:
            for order in (entry, *children):
                self._reject(order, now, f"bracket: {exc.reason}", events)
            return events
        self._children[entry.client_order_id] = list(children)
        for child in children:
            self._register(child, now)
        self._submit(entry, now, events)
        self._flush(now, events)
        return events

    def cancel(
        self, client_order_id: str, now: datetime, reason: str = "cancelled by request"
    ) -> list[VenueEvent]:
        """Cancel a pending or working order; raise ``UnknownOrder`` if it is not active."""
        order = self._orders.get(client_order_id)
        if order is None:
            raise UnknownOrder(f"no active order {client_order_id!r}")
        events = self._begin()
        self._end(order, OrderStatus.CANCELLED, now, reason, events)
        self._flush(now, events)
        return events

    def restore(self, order: Order, now: datetime) -> list[VenueEvent]:
        """Re-place an order recovered from storage (entries before their children)."""
        if order.is_terminal:
            raise OrderRejected(f"order {order.client_order_id} is {order.status.value}")
        events = self._begin()
        self._register(order, order.created_ts or now)
        parent = self._orders.get(order.parent_id) if order.parent_id else None
        if order.status is OrderStatus.PENDING:
            if parent is not None and parent.filled_quantity == ZERO:
                self._children.setdefault(parent.client_order_id, []).append(order)
            else:
                self._activate(order, now, events)
        elif order.type in TRIGGER_TYPES and not order.triggered:
            self._arm(order)
        elif order.price is not None:
            self._rest(order)
        else:
            # A market order cannot be working across a restart; it died with the process.
            self._end(order, OrderStatus.CANCELLED, now, "market order lost on restart", events)
        if parent is not None and order.status is not OrderStatus.PENDING:
            self._children.setdefault(parent.client_order_id, []).append(order)
        self._flush(now, events)
        return events

    def advance(self, now: datetime) -> list[VenueEvent]:
        """Let event time reach ``now``: activate delayed orders, expire DAY orders."""
        events = self._begin()
        self._expire_due(now, events)
        self._activate_due(now, events, inclusive=True)
        self._flush(now, events)
        return events

    def on_book(self, snapshot: BookSnapshot) -> list[VenueEvent]:
        """Replace the book for the snapshot's symbol."""
        self._book(snapshot.symbol).replace(snapshot.bids, snapshot.asks)
        return self.advance(snapshot.ts)

    def on_quote(self, quote: Quote) -> list[VenueEvent]:
        """Update the top of the book from a quote."""
        self._book(quote.symbol).set_top(
            to_decimal(quote.bid),
            to_size(quote.bid_size),
            to_decimal(quote.ask),
            to_size(quote.ask_size),
        )
        return self.advance(quote.ts)

    def on_trade(self, trade: Trade) -> list[VenueEvent]:
        """Match resting orders and triggers against a trade print."""
        events = self._begin()
        ts = trade.ts
        if self._expiries:  # the checks of ``_expire_due`` and ``_activate_due``, without calls
            self._expire_due(ts, events)
        if self._latent:
            self._activate_due(ts, events, inclusive=True)
        self._print(trade.symbol, to_decimal(trade.price), to_size(trade.size), ts, events)
        if self._dirty:
            self._flush(ts, events)
        return events

    def on_bar(self, bar: Bar) -> list[VenueEvent]:
        """Replay a bar's price path; orders due during the bar activate after the open."""
        events = self._begin()
        start = bar.ts
        end = start + BAR_LENGTH[bar.timeframe]
        symbol = bar.symbol
        if self._expiries or self._latent:
            self._expire_due(start, events)
            self._activate_due(start, events, inclusive=True)
        if not (self._resting.get(symbol) or self._armed.get(symbol) or self._latent):
            book = self._book(symbol)  # fast path: nothing to match
            book.on_print(to_decimal(bar.close), ZERO if book.synthetic else to_decimal(bar.volume))
        else:
            self._replay_bar(bar, start, end, events)
        if self._expiries or self._latent:
            self._expire_due(end, events)
            self._activate_due(end, events, inclusive=True)
        if self._dirty:
            self._flush(end, events)
        return events

    # ----------------------------------------------------------------- submission

    def _begin(self) -> list[VenueEvent]:
        # Fills of earlier calls have been applied by the caller; only this call's are pending.
        self._delta.clear()
        if self._cash:
            self._cash.clear()
        return []

    def _precheck(self, order: Order) -> None:
        validate_order(order)
        if order.client_order_id in self._orders:
            raise OrderRejected(f"duplicate client_order_id {order.client_order_id!r}")
        if order.reduce_only and self._positions is None:
            raise OrderRejected("reduce_only orders need a position lookup")

    def _submit(self, order: Order, now: datetime, events: list[VenueEvent]) -> None:
        try:
            self._precheck(order)
        except OrderRejected as exc:
            self._reject(order, now, exc.reason, events)
            return
        if order.reduce_only and self._reduce_cap(order) <= ZERO:
            self._reject(order, now, "reduce_only: no opposite position to reduce", events)
            return
        self._register(order, now)
        latency = self.config.latency
        if latency:
            heapq.heappush(self._latent, (now + latency, next(self._seq), order))
            return
        self._activate(order, now, events)

    def _register(self, order: Order, now: datetime) -> None:
        if not order.venue_order_id:
            # Derived from the client id so it stays unique across restarts of the process.
            order.venue_order_id = f"{self.config.name}:{order.client_order_id}"
        self._orders[order.client_order_id] = order
        if order.oco_group:
            self._oco.setdefault(order.oco_group, []).append(order)
        if order.tif is _DAY:
            heapq.heappush(self._expiries, (_day_end(now), next(self._seq), order))

    def _reject(self, order: Order, now: datetime, reason: str, events: list[VenueEvent]) -> None:
        order.transition(OrderStatus.REJECTED, now, reason)
        events.append(VenueEvent(VenueEventKind.REJECTED, order, now, order.status, None, reason))
        if self._orders.get(order.client_order_id) is order:
            self._drop(order)
        elif order.client_order_id in self._children:
            self._dirty[order.client_order_id] = order  # its children must be cancelled

    def _activate(self, order: Order, ts: datetime, events: list[VenueEvent]) -> None:
        order.transition(_OPEN, ts)
        events.append(_new_event(_EV_ACCEPTED, order, ts, _OPEN))
        if order.type in TRIGGER_TYPES and not order.triggered:
            self._arm(order)
        else:
            self._execute(order, ts, events)

    def _execute(self, order: Order, ts: datetime, events: list[VenueEvent]) -> None:
        limit = order.price
        tif = order.tif
        if tif is _FOK and not self._can_fill(order, limit):
            self._end(order, _CANCELLED, ts, "fok: not enough liquidity", events)
            return
        self._take(order, limit, ts, events)
        if order.status in _TERMINAL:
            return
        if limit is None:
            self._end(order, _CANCELLED, ts, "market: no more liquidity", events)
        elif tif is _IOC or tif is _FOK:
            self._end(order, _CANCELLED, ts, "ioc: unfilled remainder", events)
        else:
            self._rest(order)

    def _can_fill(self, order: Order, limit: Decimal | None) -> bool:
        if order.reduce_only and self._reduce_cap(order) < order.remaining:
            return False
        book = self._books.get(order.symbol)
        return book is not None and book.available(order.side is _BUY, limit, order.remaining)

    def _rest(self, order: Order) -> None:
        resting = self._resting.setdefault(order.symbol, [])
        resting.append(order)
        self._where[order.client_order_id] = resting

    def _arm(self, order: Order) -> None:
        armed = self._armed.setdefault(order.symbol, [])
        armed.append(order)
        self._where[order.client_order_id] = armed
        if order.type is OrderType.TRAILING_STOP:
            book = self._books.get(order.symbol)
            if book is not None and book.last is not None:
                self._trail(order, book.last)

    # ----------------------------------------------------------------- matching

    def _take(
        self, order: Order, limit: Decimal | None, ts: datetime, events: list[VenueEvent]
    ) -> None:
        want = self._fillable(order, ts, events)
        book = self._books.get(order.symbol)
        if want <= ZERO or book is None:
            return
        buy = order.side is _BUY
        levels = book.asks if buy else book.bids
        while want > ZERO and levels and order.status in _WORKING:
            level = levels[0]
            price, size = level
            if limit is not None and (price > limit if buy else price < limit):
                break
            qty = want if want < size else size
            cut = ""
            if self._guard is not None:
                qty, cut = self._allowed(order, qty, price, _TAKER)
            if qty > ZERO:
                if qty == size:
                    levels.pop(0)
                else:
                    level[1] = size - qty
                want -= qty
                self._fill(order, qty, price, _TAKER, ts, events)
            if cut:
                if order.status in _WORKING:
                    self._end(order, _CANCELLED, ts, cut, events)
                return
        if order.reduce_only:
            self._close_if_reduced(order, ts, events)

    def _allowed(
        self, order: Order, qty: Decimal, price: Decimal, liquidity: Liquidity
    ) -> tuple[Decimal, str]:
        """Return how much of ``qty`` the guard lets fill at ``price`` (and why not all)."""
        cfg = self.config
        bps = cfg.maker_fee_bps if liquidity is _MAKER else cfg.taker_fee_bps
        pending = self._delta.get((order.account, order.symbol), ZERO)
        return self._guard(order, qty, price, bps, pending, self._cash.get(order.account, ZERO))

    def _fillable(self, order: Order, ts: datetime, events: list[VenueEvent]) -> Decimal:
        """Return how much ``order`` may fill now; cancel a reduce-only order with nothing left."""
        if not order.reduce_only:
            return order.remaining
        cap = self._reduce_cap(order)
        if cap <= ZERO:
            self._end(order, OrderStatus.CANCELLED, ts, "reduce_only: position is flat", events)
            return ZERO
        return min(order.remaining, cap)

    def _close_if_reduced(self, order: Order, ts: datetime, events: list[VenueEvent]) -> None:
        if order.reduce_only and order.is_working and self._reduce_cap(order) <= ZERO:
            self._end(order, OrderStatus.CANCELLED, ts, "reduce_only: position closed", events)

    def _reduce_cap(self, order: Order) -> Decimal:
        if self._positions is None:
            return ZERO
        key = (order.account, order.symbol)
        held = self._positions(order.account, order.symbol) + self._delta.get(key, ZERO)
        if order.side is _BUY:
            return -held if held < ZERO else ZERO
        return held if held > ZERO else ZERO

    def _fill(
        self,
        order: Order,
        qty: Decimal,
        price: Decimal,
        liquidity: Liquidity,
        ts: datetime,
        events: list[VenueEvent],
    ) -> None:
        fill = book_fill(self.config, order, qty, price, liquidity, ts)
        events.append(_new_event(_EV_FILL, order, ts, order.status, fill))
        account = order.account
        key = (account, order.symbol)
        signed = qty if order.side is _BUY else -qty
        delta = self._delta
        held = delta.get(key)
        delta[key] = signed if held is None else held + signed
        if self._guard is not None:
            cash = self._cash
            moved = cash.get(account)
            flow = signed * price
            cash[account] = (ZERO if moved is None else moved) - flow - fill.fee
        if order.oco_group:
            self._cancel_siblings(order, ts, events)
        if order.client_order_id in self._children:
            self._dirty[order.client_order_id] = order
        if order.status is _FILLED:
            self._drop(order)

    def _print(
        self, symbol: str, price: Decimal, budget: Decimal, ts: datetime, events: list[VenueEvent]
    ) -> Decimal:
        """Process one trade print; return the print size our orders did not use."""
        self._book(symbol).on_print(price, budget)
        if self._resting.get(symbol):
            budget = self._match_resting(symbol, price, budget, ts, events)
        if self._armed.get(symbol):
            self._check_triggers(symbol, price, ts, events)
        if self._dirty:
            self._flush(ts, events)
        return budget

    def _match_resting(
        self, symbol: str, price: Decimal, budget: Decimal, ts: datetime, events: list[VenueEvent]
    ) -> Decimal:
        resting = self._resting[symbol]
        buys = [o for o in resting if o.side is _BUY and o.price >= price]
        sells = [o for o in resting if o.side is not _BUY and o.price <= price]
        # Price priority, then time: sort() is stable, also with reverse=True.
        buys.sort(key=lambda o: o.price, reverse=True)
        sells.sort(key=lambda o: o.price)
        for order in buys + sells:
            if budget <= ZERO:
                break
            if not order.is_working:
                continue  # cancelled by an OCO sibling earlier in this print
            qty = min(self._fillable(order, ts, events), budget)
            if qty <= ZERO:
                continue
            cut = ""
            if self._guard is not None:
                qty, cut = self._allowed(order, qty, order.price, _MAKER)
            if qty > ZERO:
                budget -= qty
                self._fill(order, qty, order.price, Liquidity.MAKER, ts, events)
            if cut and order.is_working:
                self._end(order, OrderStatus.CANCELLED, ts, cut, events)
                continue
            self._close_if_reduced(order, ts, events)
        return budget

    def _check_triggers(
        self, symbol: str, price: Decimal, ts: datetime, events: list[VenueEvent]
    ) -> None:
        fired = []
        for order in self._armed[symbol]:
            if order.type is OrderType.TRAILING_STOP:
                self._trail(order, price)
            if _hits(order, price):
                fired.append(order)
        for order in fired:
            if not order.is_working:
                continue
            self._unlist(order)
            order.triggered = True
            events.append(VenueEvent(VenueEventKind.TRIGGERED, order, ts, order.status))
            self._execute(order, ts, events)

    def _trail(self, order: Order, price: Decimal) -> None:
        anchor = self._anchors.get(order.client_order_id)
        buy = order.side is _BUY
        if anchor is not None and (price >= anchor if buy else price <= anchor):
            return
        self._anchors[order.client_order_id] = price
        if order.trail_amount is not None:
            offset = order.trail_amount
        else:
            offset = price * order.trail_percent / HUNDRED
        level = price + offset if buy else price - offset
        stop = order.stop_price
        # A trailing stop only ever tightens.
        if stop is None or (level < stop if buy else level > stop):
            order.stop_price = level

    def _replay_bar(
        self, bar: Bar, start: datetime, end: datetime, events: list[VenueEvent]
    ) -> None:
        symbol = bar.symbol
        o, h, lo, c = (to_decimal(x) for x in (bar.open, bar.high, bar.low, bar.close))
        budget = to_decimal(bar.volume)
        budget = self._print(symbol, o, budget, start, events)
        # Orders that arrive during the bar see the rest of its path.
        self._activate_due(end, events, inclusive=False)
        path = (h, lo, c) if c < o else (lo, h, c)
        prev = o
        for point in path:
            for level in self._levels_between(symbol, prev, point):
                budget = self._print(symbol, level, budget, start, events)
            budget = self._print(symbol, point, budget, start, events)
            prev = point

    def _levels_between(self, symbol: str, a: Decimal, b: Decimal) -> list[Decimal]:
        """Return the trigger levels strictly between ``a`` and ``b``, in path order."""
        lo, hi = (a, b) if a < b else (b, a)
        levels = {
            o.stop_price
            for o in self._armed.get(symbol, ())
            if o.stop_price is not None and lo < o.stop_price < hi
        }
        return sorted(levels, reverse=b < a)

    # ----------------------------------------------------------------- time and lifecycle

    def _activate_due(self, ts: datetime, events: list[VenueEvent], *, inclusive: bool) -> None:
        latent = self._latent
        while latent and (latent[0][0] <= ts if inclusive else latent[0][0] < ts):
            due, _, order = heapq.heappop(latent)
            if order.status is OrderStatus.PENDING and order.client_order_id in self._orders:
                self._activate(order, due, events)

    def _expire_due(self, ts: datetime, events: list[VenueEvent]) -> None:
        expiries = self._expiries
        while expiries and expiries[0][0] <= ts:
            end, _, order = heapq.heappop(expiries)
            if not order.is_terminal and self._orders.get(order.client_order_id) is order:
                self._end(order, OrderStatus.EXPIRED, end, "day order expired", events)

    def _end(
        self,
        order: Order,
        status: OrderStatus,
        ts: datetime | None,
        reason: str,
        events: list[VenueEvent],
    ) -> None:
        """Cancel or expire ``order`` and release what it held."""
        order.transition(status, ts, reason)
        kind = _EV_EXPIRED if status is _EXPIRED else _EV_CANCELLED
        events.append(_new_event(kind, order, ts, order.status, None, reason))
        self._drop(order)

    def _drop(self, order: Order) -> None:
        oid = order.client_order_id
        self._orders.pop(oid, None)
        holder = self._where.pop(oid, None)  # ``_unlist``, written out
        if holder is not None:
            holder.remove(order)
        if self._anchors:
            self._anchors.pop(oid, None)
        if order.oco_group:
            group = self._oco.get(order.oco_group)
            if group is not None and order in group:
                group.remove(order)
                if not group:
                    del self._oco[order.oco_group]
        if oid in self._children:
            self._dirty[oid] = order

    def _unlist(self, order: Order) -> None:
        holder = self._where.pop(order.client_order_id, None)
        if holder is not None:
            holder.remove(order)

    def _cancel_siblings(self, order: Order, ts: datetime, events: list[VenueEvent]) -> None:
        for sibling in list(self._oco.get(order.oco_group, ())):
            if sibling is not order and not sibling.is_terminal:
                self._end(sibling, OrderStatus.CANCELLED, ts, "oco: sibling filled", events)

    def _flush(self, ts: datetime | None, events: list[VenueEvent]) -> None:
        """Bring bracket children in line with their entries' fills."""
        while self._dirty:
            dirty, self._dirty = self._dirty, {}
            for entry in dirty.values():
                self._sync_children(entry, ts, events)

    def _sync_children(self, entry: Order, ts: datetime | None, events: list[VenueEvent]) -> None:
        children = self._children.get(entry.client_order_id, ())
        filled = entry.filled_quantity
        for child in children:
            if child.is_terminal:
                continue
            if filled == ZERO:
                if entry.is_terminal:
                    self._end(child, OrderStatus.CANCELLED, ts, "bracket entry not filled", events)
                continue
            if child.status is OrderStatus.PENDING:
                child.resize(filled, ts)
                self._activate(child, ts, events)
            elif child.quantity != filled and filled >= child.filled_quantity:
                child.resize(filled, ts)
                events.append(VenueEvent(VenueEventKind.AMENDED, child, ts, child.status))
        if entry.is_terminal:
            self._children.pop(entry.client_order_id, None)

    def _book(self, symbol: str) -> PaperBook:
        book = self._books.get(symbol)
        if book is None:
            cfg = self.config
            book = PaperBook(cfg.synthetic_spread_bps, cfg.synthetic_depth)
            self._books[symbol] = book
        return book


__all__ = [
    "PaperVenue",
    "PositionLookup",
    "Venue",
    "VenueConfig",
    "VenueEvent",
    "VenueEventKind",
]
