"""``OrderManager``: intent -> order -> pre-trade hook -> venue -> fills -> portfolio.

Buying power (``buying_power``) is the OMS's own check, on every path: after the hook it reduces
or rejects an order the account cannot pay for at its reference price (fees included), and it
binds the same rule as the fill guard of venues that simulate fills, so a fill at a later,
worse price is cut to what the account can pay then.

The OMS owns the open-order book of every account it manages and the accounts' portfolios; the
venue owns matching. Persistence and broadcasting plug in as listeners: after each step the OMS
calls ``listener.on_fill(fill)`` for every fill and ``listener.on_order(order)`` once for every
order that changed, in that order. A listener that raises aborts the call (the engine state is
already updated; the caller decides how to recover) — exceptions are never swallowed.
"""

from __future__ import annotations

import dis
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from marketdata.engine.events import Bar, BookSnapshot, Quote, Trade
from trading.engine.buying_power import Margin
from trading.engine.errors import OrderRejected, UnknownAccount, UnknownOrder
from trading.engine.hooks import AllowAllHook, Decision, OrderProposal, PreTradeHook, TradingMode
from trading.engine.money import ZERO, to_decimal
from trading.engine.orders import (
    TERMINAL_STATUSES,
    Fill,
    IdFactory,
    Order,
    OrderIntent,
    OrderSide,
    OrderStatus,
    OrderType,
    new_order_id,
    order_from_intent,
    validate_order,
)
from trading.engine.portfolio import Portfolio, PositionSnapshot
from trading.engine.venue import Venue, VenueEvent, VenueEventKind

# Enum members as module constants: reading one off its class costs a metaclass lookup in 3.11.
_EV_FILL = VenueEventKind.FILL
_MARKET, _LIMIT, _STOP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP
_BUY = OrderSide.BUY
_TERMINAL = TERMINAL_STATUSES


def _does_nothing(method: Callable[..., object]) -> bool:
    """Return True if ``method`` is a Python function whose body does nothing (a docstring,
    ``pass`` or ``...``): the OMS does not call it (``StrategyRunner.on_order``, say)."""
    code = getattr(getattr(method, "__func__", method), "__code__", None)
    if code is None:
        return False
    steps = [(i.opname, i.argval) for i in dis.get_instructions(code) if i.opname != "RESUME"]
    return steps in ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


class OrderListener(Protocol):
    """Receives every fill and every order change (persistence, broadcasting, strategies).

    A listener may also have ``listening``: a collection it keeps empty while it has nothing
    to hear (``AlgoBook``: its working parents); the OMS does not call it then. Methods whose
    body does nothing are never called (``StrategyRunner.on_order``).
    """

    def on_order(self, order: Order) -> None:
        """Handle an order whose state changed."""
        ...

    def on_fill(self, fill: Fill) -> None:
        """Handle a new fill (already applied to the portfolio)."""
        ...


class OrderManager:
    """Route intents through the pre-trade hook to the venue and book the results."""

    def __init__(
        self,
        venue: Venue,
        *,
        hook: PreTradeHook | None = None,
        listeners: Iterable[OrderListener] = (),
        portfolios: Iterable[Portfolio] = (),
        id_factory: IdFactory = new_order_id,
    ) -> None:
        self.venue = venue
        self.hook: PreTradeHook = hook or AllowAllHook()
        self.listeners: list[OrderListener] = list(listeners)
        # The listeners' bound methods (those that do something), rebuilt when ``listeners``
        # changes: binding them afresh on every call cost an allocation each.
        self._heard: list[OrderListener] = []
        self._calls: tuple[tuple[Callable | None, Callable | None, object], ...] = ()
        self._hear: tuple[tuple[Callable | None, Callable | None, object], ...] = ()
        self._hear_orders: tuple[tuple[Callable, object], ...] = ()
        self._ids = id_factory
        self._portfolios: dict[str, Portfolio] = {}
        self._marked: tuple[Portfolio, ...] = ()  # every portfolio, for the marks of each bar
        self._modes: dict[str, TradingMode] = {}
        self._open: dict[str, dict[str, Order]] = {}  # account -> id -> order
        self._index: dict[str, Order] = {}  # every open order by id
        for portfolio in portfolios:
            self.add_account(portfolio)
        venue.bind_positions(self.position_quantity)
        # Venues that simulate fills cut them to the buying power; a live exchange enforces its
        # own at the fill, and the submit-time check below covers it before.
        bind_guard = getattr(venue, "bind_guard", None)
        if bind_guard is not None:
            bind_guard(self.fill_guard)
        self._fee_bps: Decimal = getattr(getattr(venue, "config", None), "taker_fee_bps", ZERO)
        # A venue whose bar step only keeps the bar while no order is open says where (a
        # backtest's under next-open fills); ``on_bar`` then stores it there itself.
        self._idle_bars: dict[str, Bar] | None = getattr(venue, "idle_bars", None)

    # ----------------------------------------------------------------- accounts

    def add_account(self, portfolio: Portfolio, mode: TradingMode = TradingMode.ACTIVE) -> None:
        """Manage ``portfolio``'s account."""
        self._portfolios[portfolio.account] = portfolio
        self._marked = tuple(self._portfolios.values())
        self._modes[portfolio.account] = mode
        self._open.setdefault(portfolio.account, {})

    def add_listener(self, listener: OrderListener) -> None:
        """Register a listener for fills and order changes."""
        self.listeners.append(listener)

    def portfolio(self, account: str) -> Portfolio:
        """Return the portfolio of ``account`` or raise ``UnknownAccount``."""
        try:
            return self._portfolios[account]
        except KeyError:
            raise UnknownAccount(f"account {account!r} is not managed") from None

    def accounts(self) -> list[str]:
        """Return the managed account names."""
        return list(self._portfolios)

    def position_quantity(self, account: str, symbol: str) -> Decimal:
        """Return the signed position of ``account`` in ``symbol`` (the venue's lookup)."""
        try:
            portfolio = self._portfolios[account]  # (a subscript: no method call)
        except KeyError:
            portfolio = self.portfolio(account)  # raises UnknownAccount
        pos = portfolio.positions.get(symbol)  # ``Portfolio.quantity``, one call fewer
        return ZERO if pos is None else pos.quantity

    def set_margin(self, account: str, margin: Margin | None) -> None:
        """Set ``account``'s buying-power setting (its stored leverage and policy)."""
        self.portfolio(account).margin = margin

    def fill_guard(
        self,
        order: Order,
        quantity: Decimal,
        price: Decimal,
        fee_bps: Decimal,
        pending_qty: Decimal,
        pending_cash: Decimal,
    ) -> tuple[Decimal, str]:
        """Return how much of a fill at ``price`` the account can pay (the venues' guard)."""
        if order.reduce_only:
            return quantity, ""  # the venue caps these at the opposite position
        return self._portfolios[order.account].cap_order(
            order.symbol, order.side is _BUY, quantity, price, fee_bps, pending_qty, pending_cash
        )

    def mode(self, account: str) -> TradingMode:
        """Return the trading mode of ``account``."""
        self.portfolio(account)
        return self._modes[account]

    def set_mode(self, account: str, mode: TradingMode, now: datetime) -> list[Order]:
        """Set the trading mode; HALTED cancels the account's open orders (returned)."""
        self.portfolio(account)
        self._modes[account] = mode
        if mode is TradingMode.HALTED:
            return self.cancel_all(account, now, reason="account halted")
        return []

    # ----------------------------------------------------------------- orders

    def open_orders(self, account: str | None = None, symbol: str | None = None) -> list[Order]:
        """Return open (pending or working) orders, optionally for one account / symbol."""
        if account is None:
            orders: Iterable[Order] = self._index.values()
        else:
            orders = self._open.get(account, {}).values()
        return [o for o in orders if symbol is None or o.symbol == symbol]

    def has_open_orders(self, account: str, symbol: str | None = None) -> bool:
        """Return True if ``account`` has an open order (in ``symbol``, if given)."""
        orders = self._open.get(account)
        if not orders:
            return False
        if symbol is None:
            return True
        for o in orders.values():
            if o.symbol == symbol:
                return True
        return False

    def open_order_book(self, account: str) -> Mapping[str, Order]:
        """Return ``account``'s open orders by client order id: the live mapping, changed in
        place as orders open and finish and never replaced, for a loop that asks on every step
        whether anything is open (the sparse replay). Read it; never change it."""
        self.portfolio(account)  # an unknown account raises
        return self._open[account]

    def reference_price(self, symbol: str) -> Decimal | None:
        """Return the venue's current mid (or last) price for ``symbol``."""
        return self.venue.reference_price(symbol)

    def get(self, client_order_id: str) -> Order | None:
        """Return the open order with this id, if any."""
        return self._index.get(client_order_id)

    def submit(self, intent: OrderIntent, now: datetime) -> Order:
        """Turn ``intent`` into an order, check it, send it; return the order (maybe rejected).

        The one way in for every order (strategies, operators, the API, backtests): built from
        the intent (``order_from_intent``), checked (``validate_order``, duplicate id, the
        pre-trade hook, buying power), sent to the venue, and whatever the venue did at once
        (accepted, filled, rejected) booked by ``_process`` before this returns.
        """
        try:
            portfolio = self._portfolios[intent.account]  # (a subscript: no method call)
        except KeyError:
            portfolio = self.portfolio(intent.account)  # raises UnknownAccount
        order = order_from_intent(intent, intent.client_order_id or self._ids(), now)
        children: Sequence[Order] = (
            ()  # the common case: a plain order
            if intent.stop_loss is None and intent.take_profit is None
            else self._bracket_children(intent, order)
        )
        oid = order.client_order_id
        try:
            qty = order.quantity
            # ``_check`` passes a plain market order with a symbol, a positive, finite Decimal
            # quantity and a new id (a new order is pending and unfilled by construction): that
            # case is seen here with no call; any other goes through it (and its messages).
            if not (
                order.type is _MARKET
                and order.price is None
                and order.stop_price is None
                and order.trail_amount is None
                and order.trail_percent is None
                and order.symbol
                and qty.__class__ is Decimal
                and qty.is_finite()
                and qty > ZERO
                and not children
                and oid not in self._index
            ):
                self._check(order, children)
            # The pre-trade step: the reference price, the hook, buying power.
            reference = order.reference_price = self.venue.reference_price(order.symbol)
            if reference is None or self.hook.__class__ is not AllowAllHook:  # AllowAll: no
                reference = self._hook_check(order, portfolio, reference, now)  # proposal, view
            if not order.reduce_only and portfolio.margin is not None:
                # A limit or stop order is meant to fill at its own price; the venue's fill
                # guard judges the price it really gets.
                quantity = order.quantity
                allowed, reason = portfolio.cap_order(
                    order.symbol,
                    order.side is _BUY,
                    quantity,
                    order.price or order.stop_price or reference,
                    self._fee_bps,
                )
                if allowed is not quantity and allowed < quantity:  # all: the very object back
                    self._reduce(order, allowed, reason)
        except OrderRejected as exc:
            self._reject_locally(order, children, now, exc.reason)
            return order
        self._index[oid] = order  # ``_track``, written out for the plain order
        self._open[order.account][oid] = order
        if children:
            self._send_bracket(order, children, now)
            return order
        events = self.venue.submit(order, now)
        if events:
            self._process(events, (order,))
            return order
        # Held for later (a backtest's market order until its fill moment):
        # ``_process_orders((order,))``, written out for the one order (no tuple, no loops
        # over it).
        if order.status in _TERMINAL:
            self._index.pop(oid, None)
            self._open[order.account].pop(oid, None)
        hear = self._hear_orders if self.listeners == self._heard else self._hearing_orders()
        for on_order, listening in hear:
            if listening:
                on_order(order)
        return order

    def cancel(
        self, client_order_id: str, now: datetime, reason: str = "cancelled by request"
    ) -> Order:
        """Cancel an open order; raise ``UnknownOrder`` if it is not open."""
        order = self._index.get(client_order_id)
        if order is None:
            raise UnknownOrder(f"no open order {client_order_id!r}")
        self._process(self.venue.cancel(client_order_id, now, reason))
        return order

    def cancel_all(
        self, account: str, now: datetime, symbol: str | None = None, reason: str = ""
    ) -> list[Order]:
        """Cancel every open order of ``account`` (optionally one symbol); return them."""
        self.portfolio(account)
        targets = [o for o in self.open_orders(account, symbol) if not o.parent_id]
        # Children go with their entries when the entry never filled; cancel the rest explicitly.
        targets += [o for o in self.open_orders(account, symbol) if o.parent_id]
        cancelled = []
        for order in targets:
            if order.client_order_id not in self._index:
                continue  # already cancelled together with its bracket entry
            events = self.venue.cancel(order.client_order_id, now, reason or "cancel all")
            self._process(events)
            cancelled.append(order)
        return cancelled

    # ----------------------------------------------------------------- market data

    def on_trade(self, trade: Trade) -> list[VenueEvent]:
        """Feed a trade to the venue, book fills, mark positions."""
        events = self.venue.on_trade(trade)
        self._process(events)
        self._mark(trade.symbol, to_decimal(trade.price), trade.ts)
        return events

    def on_quote(self, quote: Quote) -> list[VenueEvent]:
        """Feed a quote to the venue and mark positions at its mid."""
        events = self.venue.on_quote(quote)
        self._process(events)
        if quote.bid > 0 and quote.ask > 0:
            self._mark(quote.symbol, to_decimal(quote.mid), quote.ts)
        return events

    def on_book(self, book: BookSnapshot) -> list[VenueEvent]:
        """Feed a book snapshot to the venue and mark positions at the venue's mid."""
        events = self.venue.on_book(book)
        self._process(events)
        mid = self.venue.reference_price(book.symbol)
        if mid is not None:
            self._mark(book.symbol, mid, book.ts)
        return events

    def on_bar(self, bar: Bar) -> Sequence[VenueEvent]:
        """Feed a bar to the venue and mark positions at its close; return the venue's events.

        Run on every bar of a full replay: an idle bar returns a shared empty tuple (no list
        made and freed a bar), and ``bar.ts`` is read only when a mark needs it.
        """
        symbol = bar.symbol
        idle = self._idle_bars
        if idle is not None and not self._index:
            # No order is open: the venue's bar step would only keep the bar (its ``idle_bars``).
            idle[symbol] = bar
            events: Sequence[VenueEvent] = ()
        else:
            events = self.venue.on_bar(bar)
            if events:
                self._process(events)
        # The bar's start rolls the day, so the day opens at the previous day's last close.
        close = bar.close
        for portfolio in self._marked:
            below = portfolio.defer_below.get(symbol)
            if below is not None and close < below and bar.ts < portfolio.defer_until:
                portfolio.deferred_marks[symbol] = close  # ``mark_at``'s deferral, without a call
            elif symbol in portfolio.positions:
                portfolio.mark_at(symbol, close, bar.ts)  # often deferred too: see Portfolio
        return events

    def advance(self, now: datetime) -> list[VenueEvent]:
        """Let event time pass at the venue (latency, DAY expiry)."""
        events = self.venue.advance(now)
        self._process(events)
        return events

    def apply(self, events: Sequence[VenueEvent]) -> None:
        """Book events an asynchronous (live) venue produced outside an OMS call."""
        self._process(events)

    # ----------------------------------------------------------------- recovery

    def restore(
        self,
        account: str,
        *,
        cash: Decimal,
        positions: Iterable[PositionSnapshot] = (),
        open_orders: Iterable[Order] = (),
        now: datetime,
        realized_pnl: Decimal | None = None,
        fees: Decimal | None = None,
        peak_equity: Decimal | None = None,
        day_start_equity: Decimal | None = None,
    ) -> list[VenueEvent]:
        """Reload an account after a restart: portfolio figures, then its open orders."""
        portfolio = self._portfolios.get(account) or Portfolio(account, cash, ts=now)
        if account not in self._portfolios:
            self.add_account(portfolio)
        portfolio.restore(
            cash=cash,
            positions=positions,
            realized_pnl=realized_pnl,
            fees=fees,
            peak_equity=peak_equity,
            day_start_equity=day_start_equity,
            ts=now,
        )
        orders = sorted(open_orders, key=lambda o: bool(o.parent_id))  # entries first
        events: list[VenueEvent] = []
        for order in orders:
            if order.account != account:
                raise OrderRejected(f"order {order.client_order_id} belongs to {order.account!r}")
            self._track(order)
            events += self.venue.restore(order, now)
        self._process(events)
        return events

    # ----------------------------------------------------------------- internals

    def _send_bracket(self, entry: Order, children: Sequence[Order], now: datetime) -> None:
        """Open the bracket's children beside its entry and send the three to the venue."""
        for child in children:
            self._track(child)
        self._process(self.venue.submit_bracket(entry, children, now), (entry, *children))

    def _check(self, order: Order, children: Sequence[Order]) -> None:
        """Raise ``OrderRejected`` unless ``order`` is well formed (``validate_order``), its
        bracket's prices are ordered and its id is new: in that order."""
        validate_order(order)
        if children:
            self._check_bracket(order, children)
        oid = order.client_order_id
        if oid in self._index:
            raise OrderRejected(f"duplicate client_order_id {oid!r}")

    @staticmethod
    def _reduce(order: Order, allowed: Decimal, reason: str) -> None:
        """Cut ``order`` to the ``allowed`` quantity buying power leaves (none: reject it)."""
        if allowed <= ZERO:
            raise OrderRejected(reason)
        order.metadata["requested_quantity"] = str(order.quantity)
        order.metadata["reduced_by"] = "buying_power"
        order.quantity = allowed

    def _hook_check(
        self, order: Order, portfolio: Portfolio, reference: Decimal | None, now: datetime
    ) -> Decimal:
        """Return the order's reference price (the venue's ``reference``, else its own limit or
        stop price; none: reject it) after the pre-trade hook's check (not AllowAll's)."""
        if reference is None:
            reference = order.price or order.stop_price
            if reference is None:
                raise OrderRejected(f"no reference price for {order.symbol}")
        if self.hook.__class__ is AllowAllHook:
            return reference
        account = order.account
        proposal = OrderProposal(
            account=account,
            symbol=order.symbol,
            side=order.side.value,
            quantity=order.quantity,
            order_type=order.type.value,
            reference_price=reference,
            limit_price=order.price,
            strategy=order.strategy,
            reduce_only=order.reduce_only,
            ts=now,
        )
        view = portfolio.view(self._modes[account], len(self._open[account]))
        result = self.hook.check(proposal, view)
        if result.decision is Decision.REJECT:
            raise OrderRejected(result.reason or "rejected by pre-trade check")
        if result.decision is Decision.REDUCE and result.quantity < order.quantity:
            if result.quantity <= 0:
                raise OrderRejected(result.reason or "reduced to zero by pre-trade check")
            order.metadata["requested_quantity"] = str(order.quantity)
            order.metadata["reduced_by"] = result.limit or result.reason
            order.quantity = result.quantity
        return reference

    def _bracket_children(self, intent: OrderIntent, entry: Order) -> list[Order]:
        if intent.stop_loss is None and intent.take_profit is None:
            return []  # the common case: a plain order
        exit_side = entry.side.opposite
        children = []
        if intent.stop_loss is not None:
            children.append(self._child(entry, exit_side, _STOP, "stop_loss"))
            children[-1].stop_price = intent.stop_loss
        if intent.take_profit is not None:
            children.append(self._child(entry, exit_side, _LIMIT, "take_profit"))
            children[-1].price = intent.take_profit
        return children

    def _child(self, entry: Order, side: OrderSide, kind: OrderType, role: str) -> Order:
        return Order(
            symbol=entry.symbol,
            side=side,
            quantity=entry.quantity,
            type=kind,
            account=entry.account,
            client_order_id=self._ids(),
            reduce_only=True,
            strategy=entry.strategy,
            signal=role,
            parent_id=entry.client_order_id,
            created_ts=entry.created_ts,
            updated_ts=entry.created_ts,
        )

    @staticmethod
    def _check_bracket(entry: Order, children: Sequence[Order]) -> None:
        stop = next((c.stop_price for c in children if c.type is OrderType.STOP), None)
        take = next((c.price for c in children if c.type is OrderType.LIMIT), None)
        ref = entry.price
        buy = entry.side is OrderSide.BUY
        prices = [p for p in (stop, ref, take) if p is not None]
        ordered = prices == sorted(prices, reverse=not buy)
        if not ordered or len(set(prices)) != len(prices):
            raise OrderRejected(
                "bracket prices must be ordered: buy stop_loss < entry < take_profit, "
                "sell take_profit < entry < stop_loss"
            )

    def _reject_locally(
        self, order: Order, children: Sequence[Order], now: datetime, reason: str
    ) -> None:
        for o in (order, *children):
            o.transition(OrderStatus.REJECTED, now, reason if o is order else f"bracket: {reason}")
        for listener in self.listeners:
            for o in (order, *children):
                listener.on_order(o)

    def _track(self, order: Order) -> None:
        self._index[order.client_order_id] = order
        self._open[order.account][order.client_order_id] = order

    def _listener_calls(self) -> tuple[tuple[Callable | None, Callable | None, object], ...]:
        """Return each listener's (on_fill, on_order, listening): None for a method that does
        nothing, and its ``listening`` collection (None: it always listens)."""
        listeners = self.listeners
        if listeners != self._heard:  # ``listeners`` is public: changed in place, say
            self._heard = list(listeners)
            self._calls = calls = tuple(
                (
                    None if _does_nothing(listener.on_fill) else listener.on_fill,
                    None if _does_nothing(listener.on_order) else listener.on_order,
                    getattr(listener, "listening", None),
                )
                for listener in listeners
            )
            # The loops' forms: listeners with nothing to call left out, and ``listening`` True
            # for one that always listens (``if listening:`` then says it all).
            self._hear = tuple(
                (on_fill, on_order, True if listening is None else listening)
                for on_fill, on_order, listening in calls
                if on_fill is not None or on_order is not None
            )
            self._hear_orders = tuple(
                (on_order, True if listening is None else listening)
                for _, on_order, listening in calls
                if on_order is not None
            )
        return self._calls

    def _hearing(self) -> tuple[tuple[Callable | None, Callable | None, object], ...]:
        """Return ``_hear`` brought up to date with ``listeners``."""
        self._listener_calls()
        return self._hear

    def _hearing_orders(self) -> tuple[tuple[Callable, object], ...]:
        """Return ``_hear_orders`` brought up to date with ``listeners``."""
        self._listener_calls()
        return self._hear_orders

    def _process(self, events: Sequence[VenueEvent], extra: Sequence[Order] = ()) -> None:
        """Book fills, forget finished orders and notify listeners.

        The one place fills reach the books, live and in backtests alike: each fill is applied
        to its account's portfolio in event order, finished orders leave the open-order book,
        then every listener hears of every fill and then of every order that changed (each
        once, ``extra`` first: the orders of the call that made the events).
        """
        if not events:
            if extra:
                self._process_orders(extra)
            return
        portfolios = self._portfolios
        fills: list[Fill] = []
        changed: dict[str, Order] = {o.client_order_id: o for o in extra} if extra else {}
        for event in events:
            order = event.order
            changed[order.client_order_id] = order
            if event.kind is _EV_FILL:
                fill = event.fill
                portfolios[order.account].apply_fill(fill)
                fills.append(fill)
        orders = changed.values()  # a local dict's view: read, never changed, below
        index, book = self._index, self._open
        for order in orders:
            if order.status in _TERMINAL:  # ``is_terminal``, without the property call
                oid = order.client_order_id
                index.pop(oid, None)
                book[order.account].pop(oid, None)
        # Each listener in turn hears of every fill, then of every order (no call to say so).
        hear = self._hear if self.listeners == self._heard else self._hearing()
        for on_fill, on_order, listening in hear:
            if listening:  # (else nothing to hear now: an AlgoBook with no parent working)
                for fill in fills if on_fill is not None else ():
                    on_fill(fill)
                for order in orders if on_order is not None else ():
                    on_order(order)

    def _process_orders(self, orders: Sequence[Order]) -> None:
        """``_process`` of orders that changed with no venue event (distinct ids: a submit)."""
        index, book = self._index, self._open
        for order in orders:
            if order.status in _TERMINAL:
                oid = order.client_order_id
                index.pop(oid, None)
                book[order.account].pop(oid, None)
        hear = self._hear_orders if self.listeners == self._heard else self._hearing_orders()
        for on_order, listening in hear:
            if listening:
                for order in orders:
                    on_order(order)

    def _mark(self, symbol: str, price: Decimal, ts: datetime | None) -> None:
        for portfolio in self._portfolios.values():
            if symbol in portfolio.positions:
                portfolio.mark(symbol, price, ts)
