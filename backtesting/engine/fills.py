"""Fill models for backtests: a ``Venue`` wrapper that decides *when*, at *what price* and for
*how much* market orders execute, while every execution is done by ``trading.engine`` itself.

``BacktestVenue`` satisfies ``trading.engine.venue.Venue`` and owns two ``PaperVenue``s:

* the *inner* venue receives limit, stop, trailing and bracket orders and replays each bar's price
  path exactly as in paper trading (its maker fills are capped by ``volume_cap`` × bar volume);
* market orders are held by the wrapper until the fill model's moment — the next bar's open
  (``next_open``), the close of the bar just seen (``close``), or the current order book
  (``book``: given snapshots, else a book synthesised from the last bar's range and volume) —
  priced there by the slippage model and capped by the volume cap. Each execution is a child
  market order sent to the *execution* venue, which quotes exactly that price (or the book), and
  the child's fills (price, fee, liquidity) are booked against the parent order through
  ``Order.fill``. So fees, fills and order states come from the one trading engine; only the
  price and the size of each execution are modelled here. Whatever the cap leaves keeps working
  (GTC/DAY), is cancelled (IOC), or kills the order (FOK).

The OMS's buying-power guard (``trading.engine.buying_power``) judges every execution at its own
price: the wrapper's priced executions here, the inner and execution venues' fills there, each
seeing the fills of the current call the portfolio has not booked yet.

Bars for which nothing is working are not replayed through the inner venue; its book is brought
up to date from the last bar just before it is next needed, which gives the same result.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Protocol

from backtesting.engine.errors import BacktestConfigError
from marketdata.engine.events import Bar, BookSnapshot, Quote, Trade
from marketdata.engine.records import record_builder
from trading.engine import money as _money
from trading.engine.buying_power import FillGuard
from trading.engine.constants import DEFAULT_LOT
from trading.engine.errors import UnknownOrder
from trading.engine.money import FEE_STEP, ZERO, fee_for, floor_to_step, to_decimal
from trading.engine.orders import (
    TERMINAL_STATUSES,
    WORKING_STATUSES,
    Fill,
    Liquidity,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from trading.engine.venue import (
    BAR_LENGTH,
    PaperVenue,
    PositionLookup,
    VenueConfig,
    VenueEvent,
    VenueEventKind,
    book_fill,
)

_BUY = OrderSide.BUY
_TAKER = Liquidity.TAKER
PRICE_DIGITS = 10
_TIDY = f".{PRICE_DIGITS}g"
_CENT, _DIME = Decimal("0.01"), Decimal("0.1")  # ``money.whole_cents``'s steps


class FillModel(StrEnum):
    """When market orders execute (values match ``backtesting.choices.FillModel``)."""

    NEXT_OPEN = "next_open"
    CLOSE = "close"
    BOOK = "book"


# Enum members as module constants: reading one off its class costs a metaclass lookup in 3.11.
_FM_NEXT_OPEN, _FM_CLOSE, _FM_BOOK = FillModel.NEXT_OPEN, FillModel.CLOSE, FillModel.BOOK
_MARKET = OrderType.MARKET
_PENDING, _OPEN, _CANCELLED = OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.CANCELLED
_WORKING, _TERMINAL = WORKING_STATUSES, TERMINAL_STATUSES
_GTC, _IOC, _FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
_EV_ACCEPTED, _EV_FILL = VenueEventKind.ACCEPTED, VenueEventKind.FILL
_new_event = record_builder(VenueEvent)  # ``VenueEvent(...)``, built faster (several per order)
_new_fill = record_builder(Fill)  # ``Fill(...)``, as ``venue.book_fill`` builds it


class SlippageModel(Protocol):
    """Turns a reference price into the price an order of ``quantity`` actually gets."""

    def adjust(self, price: float, sign: int, quantity: float, bar: Bar | None) -> float:
        """Return the execution price for a buy (``sign`` +1) or sell (-1)."""
        ...


@dataclass(frozen=True, slots=True)
class NoSlippage:
    """Execute at the reference price."""

    def adjust(self, price: float, sign: int, quantity: float, bar: Bar | None) -> float:
        """Return ``price`` unchanged."""
        return price


@dataclass(frozen=True, slots=True)
class FixedBps:
    """Pay ``bps`` basis points over (buys) or under (sells) the reference price."""

    bps: float

    def adjust(self, price: float, sign: int, quantity: float, bar: Bar | None) -> float:
        """Return ``price × (1 ± bps / 10 000)``."""
        return price * (1.0 + sign * self.bps / 10_000.0)


@dataclass(frozen=True, slots=True)
class VolumeShare:
    """Quadratic impact in the share of the bar's volume taken (zipline's VolumeShareSlippage)."""

    impact: float = 0.1

    def adjust(self, price: float, sign: int, quantity: float, bar: Bar | None) -> float:
        """Return ``price × (1 ± impact × share²)`` with share = quantity / bar volume (≤ 1)."""
        share = _volume_share(quantity, bar)
        return price * (1.0 + sign * self.impact * share * share)


@dataclass(frozen=True, slots=True)
class SquareRootImpact:
    """Square-root market impact: ``k × σ × √(quantity / volume)``, σ from the bar's range."""

    k: float = 1.0

    def adjust(self, price: float, sign: int, quantity: float, bar: Bar | None) -> float:
        """Return ``price × (1 ± k σ √share)`` with σ = (high − low) / open of the bar."""
        if bar is None or bar.open <= 0:
            return price
        sigma = (bar.high - bar.low) / bar.open
        return price * (1.0 + sign * self.k * sigma * math.sqrt(_volume_share(quantity, bar)))


def tidy_price(price: float) -> float:
    """Round a modelled price to ``PRICE_DIGITS`` significant digits.

    Model arithmetic leaves binary noise (100 × 1.001 = 100.10000000000001); exchange prices
    have a few significant digits, and short Decimals keep the portfolio's sums exact.
    """
    return float(format(price, _TIDY))


def tidy_decimal(price: float) -> Decimal:
    """Return ``to_decimal(tidy_price(price))``: the modelled price as the engine books it.

    A price whose shortest repr has at most ``PRICE_DIGITS`` significant digits (a bar's open
    in cents, say) is already tidy: rounding it to ``PRICE_DIGITS`` digits gives the very same
    float, so its repr is converted without the round trip through ``format``.
    """
    # A whole number of cents under 1e8 has at most 10 digits: tidy already. ``whole_cents``
    # (``Decimal(repr(price))`` without ``repr``), written out: one call fewer a fill.
    if 0.01 <= price < 1e8 and (n := int(price * 100.0 + 0.5)) / 100.0 == price:
        return n * _CENT if n % 10 else n // 10 * _DIME
    text = repr(price)
    if len(text) <= PRICE_DIGITS + 1 and "e" not in text:  # at most 10 digits and a point
        return Decimal(text)
    return to_decimal(tidy_price(price))


def _volume_share(quantity: float, bar: Bar | None) -> float:
    if bar is None or bar.volume <= 0:
        return 1.0
    return min(quantity / bar.volume, 1.0)


@dataclass(frozen=True, slots=True)
class FillConfig:
    """Fill model, slippage, fees and volume cap of a backtest venue."""

    model: FillModel = FillModel.NEXT_OPEN
    slippage: SlippageModel = NoSlippage()
    maker_fee_bps: Decimal = ZERO
    taker_fee_bps: Decimal = ZERO
    volume_cap: float | None = None  # max fraction of a bar's volume one order may take
    quantity_step: Decimal = DEFAULT_LOT  # caps are rounded down to this
    book_levels: int = 5  # levels per side of a synthesised book
    name: str = "backtest"

    def __post_init__(self) -> None:
        if self.volume_cap is not None and not 0 < self.volume_cap <= 1:
            raise BacktestConfigError("volume_cap must be in (0, 1]")
        if self.book_levels < 1:
            raise BacktestConfigError("book_levels must be >= 1")
        if self.maker_fee_bps < 0 or self.taker_fee_bps < 0:
            raise BacktestConfigError("fees must be non-negative (rebates are not modelled)")
        object.__setattr__(self, "model", FillModel(self.model))


def synthesise_book(bar: Bar, levels: int, volume_cap: float | None) -> BookSnapshot:
    """Return a book around ``bar.close``: ``levels`` levels a side spanning the bar's range.

    Level spacing is (high − low) / (2 × levels), at least 1 bp of the close; each level holds
    the bar's volume (× cap) spread evenly over the levels of one side.
    """
    close = bar.close
    step = max((bar.high - bar.low) / (2 * levels), close * 1e-4)
    # Sizes on the lot grid (1e-8) so the exact portfolio sums stay short.
    size = round(math.floor(bar.volume * (volume_cap or 1.0) / levels * 1e8) / 1e8, 8)
    bids = tuple((tidy_price(close - step * (i + 0.5)), size) for i in range(levels))
    asks = tuple((tidy_price(close + step * (i + 0.5)), size) for i in range(levels))
    return BookSnapshot(bar.symbol, bar.ts, bids, asks)


class BacktestVenue:
    """Backtest venue: fill-model timing and pricing around two ``PaperVenue``s (see module)."""

    def __init__(self, config: FillConfig | None = None) -> None:
        self.config = cfg = config or FillConfig()
        spread = Decimal(0)
        if isinstance(cfg.slippage, FixedBps):
            spread = to_decimal(2 * cfg.slippage.bps)  # ± bps around each print for the inner venue
        fees = {"maker_fee_bps": cfg.maker_fee_bps, "taker_fee_bps": cfg.taker_fee_bps}
        self.inner = PaperVenue(VenueConfig(cfg.name, synthetic_spread_bps=spread, **fees))
        # With no spread, the inner venue's synthetic book is centred on the last print: its mid
        # is that print exactly, so ``reference_price`` needs no replay of a skipped bar.
        self._mid_is_print = not spread
        self._quoted: set[str] = set()  # symbols whose inner book quotes made real
        self.executor = PaperVenue(VenueConfig(f"{cfg.name}-x", **fees))
        self._lookup: PositionLookup | None = None
        # The fills the current call returns (the OMS books them after it): positions and cash
        # they move are summed from here when a check needs them (``_pending_qty``,
        # ``_pending_cash``), seldom: most calls fill one order and check nothing after it.
        self._now: list[Fill] = []
        self._market: dict[str, deque[Order]] = {}  # held market orders by symbol, FIFO
        self._waiting: dict[str, list[tuple[Order, Sequence[Order]]]] = {}  # next_open non-market
        self._held: dict[str, Order] = {}  # every order the wrapper itself holds, by id
        self._live: dict[str, set[str]] = {}  # ids working at the inner venue, by symbol
        self._stale: dict[str, Bar] = {}  # last bar the inner venue has not seen, by symbol
        self._last: dict[str, Bar] = {}
        self._books: set[str] = set()  # symbols with given book snapshots
        self._ticks: set[str] = set()  # symbols with given trade prints (no bar path replay)
        self._budget: dict[str, Decimal | None] = {}  # what the volume cap leaves in this bar
        self._cap_frac = cfg.volume_cap
        self._book_model = cfg.model is FillModel.BOOK
        self._per_bar = self._cap_frac is not None or self._book_model  # work on quiet bars too
        self._deferred: list[VenueEvent] = []  # events of a sync outside any call's event list
        # Where a caller may put a bar instead of calling ``on_bar`` while no order is open (the
        # OMS: ``OrderManager.on_bar``). Then ``on_bar`` takes its hot path and only keeps the
        # bar there: nothing is held or working, so no fill, position delta or deferred event
        # can be pending, and under next-open fills the last bar is needed only as the one the
        # inner venue skipped (``_last`` is read by the close model alone). None: every bar is
        # needed (a volume cap's budget, the book model's books, the close model's last bar).
        # Next-open fills with no volume cap and no books: a bar's work is its open's fills.
        self._plain_open = cfg.model is _FM_NEXT_OPEN and not self._per_bar
        # What ``_fill_at_open`` reads of the (frozen) configs: no slippage model, the taker
        # fee, the trade ids' venue name (``book_fill``'s ``name or config.name``).
        self._open_terms = (
            cfg.slippage.__class__ is NoSlippage,
            self.executor.config.taker_fee_bps,
            cfg.name or self.executor.config.name,
        )
        self.idle_bars: dict[str, Bar] | None = self._stale if self._plain_open else None
        self._children = 0
        self._guard: FillGuard | None = None
        positions = self._positions
        self.inner.bind_positions(positions)
        self.executor.bind_positions(positions)

    # ----------------------------------------------------------------- Venue protocol

    def bind_positions(self, lookup: PositionLookup) -> None:
        """Set the ``(account, symbol) -> quantity`` lookup of the OMS."""
        self._lookup = lookup

    def bind_guard(self, guard: FillGuard | None) -> None:
        """Set the OMS's buying-power guard for every execution (None: unlimited)."""
        self._guard = guard
        inner_guard = None if guard is None else self._guard_with_pending
        self.inner.bind_guard(inner_guard)
        self.executor.bind_guard(inner_guard)

    def _guard_with_pending(
        self,
        order: Order,
        qty: Decimal,
        price: Decimal,
        fee_bps: Decimal,
        pending_qty: Decimal,
        pending_cash: Decimal,
    ) -> tuple[Decimal, str]:
        """The guard as an inner venue sees it: its own pending fills plus this call's."""
        account = order.account
        pending_qty += self._pending_qty(account, order.symbol)
        pending_cash += self._pending_cash(account)
        return self._guard(order, qty, price, fee_bps, pending_qty, pending_cash)  # type: ignore[misc]

    def reference_price(self, symbol: str) -> Decimal | None:
        """Return the inner venue's mid (or last print) for ``symbol``."""
        bar = self._stale.get(symbol)
        # (no ``_live``: the inner venue is idle, no ``_inner_idle`` call to say so)
        if bar is not None and self._mid_is_print and (not self._live or self._inner_idle()):
            if symbol not in self._books and symbol not in self._quoted:
                # The synthetic book the skipped bar would leave: mid == its close, exactly
                # (``PaperBook.on_print``'s half-spread is zero); the replay stays deferred.
                # ``to_decimal(close)``, its memory of the last float written out (no call
                # when the strategy just converted this close).
                close = bar.close
                last, converted = _money._last_float
                return converted if close is last else to_decimal(close)
        self._sync(symbol, self._deferred)
        return self.inner.reference_price(symbol)

    def _inner_idle(self) -> bool:
        """Return True if nothing works at the inner venue (no expiry or activation is due)."""
        for ids in self._live.values():
            if ids:
                return False
        return True

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Return every non-terminal order held here or at the inner venue."""
        held = [o for o in self._held.values() if symbol is None or o.symbol == symbol]
        return held + self.inner.open_orders(symbol)

    def submit(self, order: Order, now: datetime) -> list[VenueEvent]:
        """Hold a market order for its fill moment; route other orders to the inner venue."""
        # ``_begin()``, written out (no call: one per order sent).
        pending = self._now
        if pending:
            pending.clear()
        events = self._deferred
        if events:
            self._deferred = []
        else:
            events = []
        if order.type is _MARKET:  # ``_accept_market``, written out (one call fewer an order)
            oid = order.client_order_id
            if oid in self._held:
                self._reject(order, now, f"duplicate client_order_id {oid!r}", events)
                return events
            symbol = order.symbol
            if order.reduce_only:
                # ``_reduce_cap(order) <= ZERO``, written out: this call has no fills yet
                # (cleared above), so the position alone says if there is one to reduce.
                lookup = self._lookup
                held = ZERO if lookup is None else lookup(order.account, symbol)
                if not (held < ZERO if order.side is _BUY else held > ZERO):
                    self._reject(order, now, "reduce_only: no opposite position to reduce", events)
                    return events
            self._held[oid] = order
            waiting = self._market.get(symbol)
            if waiting is None:  # (setdefault built a deque every order)
                waiting = self._market[symbol] = deque()
            waiting.append(order)
            if self.config.model is not _FM_NEXT_OPEN:  # (the default: the next open's)
                self._market_at_once(symbol, now, events)
        elif self.config.model is _FM_NEXT_OPEN:
            self._hold(order, (), now, events)
        else:
            self._inner_call(events, order.symbol, lambda: self.inner.submit(order, now), order)
        return events

    def submit_bracket(
        self, entry: Order, children: Sequence[Order], now: datetime
    ) -> list[VenueEvent]:
        """Route a bracket to the inner venue (at the next open under ``next_open``)."""
        events = self._begin()
        if self.config.model is FillModel.NEXT_OPEN:
            self._hold(entry, children, now, events)
        else:
            call = lambda: self.inner.submit_bracket(entry, children, now)  # noqa: E731
            self._inner_call(events, entry.symbol, call, entry, *children)
        return events

    def cancel(
        self, client_order_id: str, now: datetime, reason: str = "cancelled by request"
    ) -> list[VenueEvent]:
        """Cancel a held or working order; raise ``UnknownOrder`` if it is not active."""
        events = self._begin()
        order = self._held.get(client_order_id)
        if order is None:
            symbol = next((s for s, ids in self._live.items() if client_order_id in ids), None)
            if symbol is None:
                raise UnknownOrder(f"no active order {client_order_id!r}")
            call = lambda: self.inner.cancel(client_order_id, now, reason)  # noqa: E731
            self._inner_call(events, symbol, call)
            return events
        self._end(order, OrderStatus.CANCELLED, now, reason, events)
        for child in self._waiting_children(order):
            self._end(child, OrderStatus.CANCELLED, now, "bracket entry not filled", events)
        return events

    def restore(self, order: Order, now: datetime) -> list[VenueEvent]:
        """Re-place a recovered order at the inner venue (market orders die with the process)."""
        events = self._begin()
        self._inner_call(events, order.symbol, lambda: self.inner.restore(order, now), order)
        return events

    def advance(self, now: datetime) -> list[VenueEvent]:
        """Let event time pass at the inner venue (DAY expiry)."""
        events = self._begin()
        events += self._track(self.inner.advance(now))
        return events

    def on_trade(self, trade: Trade) -> list[VenueEvent]:
        """Match the inner venue's working orders against a print (bars then skip the path)."""
        events = self._begin()
        self._ticks.add(trade.symbol)
        self._sync(trade.symbol, events)
        events += self._track(self.inner.on_trade(trade))
        return events

    def on_quote(self, quote: Quote) -> list[VenueEvent]:
        """Update the inner venue's top of book."""
        events = self._begin()
        self._quoted.add(quote.symbol)
        self._sync(quote.symbol, events)
        events += self._track(self.inner.on_quote(quote))
        return events

    def on_book(self, book: BookSnapshot) -> list[VenueEvent]:
        """Replace the books; under ``book`` held market orders execute against the new one."""
        events = self._begin()
        symbol = book.symbol
        self._books.add(symbol)
        self._sync(symbol, events)
        events += self._track(self.inner.on_book(book))
        if self.config.model is FillModel.BOOK:
            self._set_exec_book(book)
            self._run_held(symbol, book.ts, None, None, events)
        return events

    def on_bar(self, bar: Bar) -> list[VenueEvent]:
        """Execute what the fill model puts in this bar, then replay its path if needed."""
        symbol = bar.symbol
        if (
            self._plain_open
            and not self._waiting
            and not self._live
            and (queue := self._market.get(symbol))
        ):  # market orders wait for this open and nothing else can happen
            return self._fill_at_open(bar, queue)
        held = self._held and (self._market.get(symbol) or self._waiting.get(symbol))
        if not held and not self._live.get(symbol):
            # Hot path: nothing held or working for this symbol (most bars of a backtest).
            events = self._begin() if self._now or self._deferred else []
            self._stale[symbol] = self._last[symbol] = bar
            if self._per_bar:
                self._quiet_bar(symbol, bar)
            return events
        events = self._begin()
        model = self.config.model
        if self._cap_frac is not None:
            self._budget[symbol] = self._cap(bar)
        if held and model is _FM_NEXT_OPEN:
            if self._waiting or self._live:
                self._at_open(bar, events)
            else:  # nothing waits or works at the inner venue: all ``_at_open`` would do
                self._run_held(symbol, bar.ts, bar.open, bar, events)
        if self._live.get(symbol):
            self._sync(symbol, events)
            if symbol in self._ticks:
                events += self._track(self.inner.advance(bar.ts))
            else:
                events += self._track(self.inner.on_bar(self._capped(bar)))
        else:
            self._stale[symbol] = bar
        self._last[symbol] = bar
        if model is _FM_CLOSE and self._market.get(symbol):
            self._run_held(symbol, self._bar_end(bar), bar.close, bar, events)
        elif model is _FM_BOOK and symbol not in self._books:
            cfg = self.config
            self._set_exec_book(synthesise_book(bar, cfg.book_levels, cfg.volume_cap))
            if self._market.get(symbol):
                self._run_held(symbol, self._bar_end(bar), None, None, events)
        return events

    def _fill_at_open(self, bar: Bar, queue: deque[Order]) -> list[VenueEvent]:
        """``on_bar`` under next-open fills with no volume cap, while nothing waits or works
        at the inner venue and market orders are held for ``bar``'s symbol: ``_run_held`` at
        the open, written out with ``_execute`` for orders of no slippage and no FOK (the bar
        of most orders of a backtest; each step as there, in the same order).

        An execution at a price touches neither the inner venue nor waiting orders, so the
        bar then only becomes the last one, skipped by the inner venue (as in ``on_bar``).
        """
        # ``_begin()`` only when it has something to clear or return (no call otherwise).
        events = self._begin() if self._now or self._deferred else []
        now, lookup = self._now, self._lookup
        symbol, ts, price = bar.symbol, bar.ts, bar.open
        guard = self._guard
        plain, bps, name = self._open_terms  # (``plain``: the price is not moved)
        # ``book_fill``'s fee: ``fee_for``'s remembered rate, when it is this ``bps``'s (a pair
        # read as one, valid however the memory changes later).
        known, rate = _money._last_rate
        exact = bps is known
        for order in tuple(queue):
            if order.status is _PENDING:  # ``transition(_OPEN, ts)``, written out: it is legal
                order.status = _OPEN
                order.updated_ts = ts
                events.append(_new_event(_EV_ACCEPTED, order, ts, _OPEN))
            if order.tif is _FOK or not plain:
                self._execute(order, ts, price, bar, None, events)
            else:
                account = order.account
                qty = order.quantity - order.filled_quantity
                if order.reduce_only:  # ``_reduce_cap``, written out
                    held = (ZERO if lookup is None else lookup(account, symbol)) + (
                        self._pending_qty(account, symbol) if now else ZERO
                    )
                    cap = (
                        (-held if held < ZERO else ZERO)
                        if order.side is _BUY
                        else (held if held > ZERO else ZERO)
                    )
                    if cap <= ZERO:  # (then the cap, zero, leaves nothing to fill below)
                        self._end(order, _CANCELLED, ts, "reduce_only: position is flat", events)
                    qty = cap if cap < qty else qty
                if qty > ZERO:
                    # ``tidy_decimal(price)``'s whole cents (a bar's open, most often).
                    px = (
                        (n * _CENT if n % 10 else n // 10 * _DIME)
                        if 0.01 <= price < 1e8 and (n := int(price * 100.0 + 0.5)) / 100.0 == price
                        else tidy_decimal(price)
                    )
                    qty, cut = (
                        (qty, "")
                        if guard is None
                        else guard(
                            order,
                            qty,
                            px,
                            bps,
                            self._pending_qty(account, symbol) if now else ZERO,
                            self._pending_cash(account) if now else ZERO,
                        )
                    )
                    if qty > ZERO:  # ``book_fill(executor.config, order, qty, px, ...)``,
                        # written out (one call fewer a fill)
                        fee = (
                            (
                                (qty * px * rate).quantize(FEE_STEP, ROUND_HALF_EVEN)
                                if exact
                                else fee_for(qty, px, bps)
                            )
                            if bps
                            else ZERO
                        )
                        order.fill(qty, px, fee, ts)
                        oid = order.client_order_id
                        fill = _new_fill(
                            oid,
                            order.symbol,
                            order.side,
                            qty,
                            px,
                            fee,
                            _TAKER,
                            ts,
                            f"{name}:{oid}:{order.filled_quantity!s}",
                            order.account,
                            order.strategy,
                        )
                        events.append(_new_event(_EV_FILL, order, ts, order.status, fill))
                        now.append(fill)
                    if cut and order.status in _WORKING:
                        self._end(order, _CANCELLED, ts, cut, events)
            status = order.status
            if status in _TERMINAL:  # ``_forget``, written out (nothing waits)
                self._held.pop(order.client_order_id, None)
                if order in queue:
                    queue.remove(order)
            elif (order.tif is _IOC or order.tif is _FOK) and status in _WORKING:
                self._end(order, _CANCELLED, ts, "ioc: unfilled remainder", events)
        self._stale[symbol] = bar  # (``_last``: read by the close model alone, as idle bars)
        return events

    def _quiet_bar(self, symbol: str, bar: Bar) -> None:
        """What a bar with nothing held or working needs under a volume cap or the book model:
        the cap's budget, the synthesised book."""
        if self._cap_frac is not None:
            self._budget[symbol] = self._cap(bar)
        if self._book_model and symbol not in self._books:
            book = synthesise_book(bar, self.config.book_levels, self._cap_frac)
            self._set_exec_book(book)

    # ----------------------------------------------------------------- holding orders

    def _begin(self) -> list[VenueEvent]:
        # The OMS books every event of a call before the next call: only this call's fills count.
        if self._now:
            self._now.clear()
        if self._deferred:
            events, self._deferred = self._deferred, []
            return events
        return []

    def _positions(self, account: str, symbol: str) -> Decimal:
        base = self._lookup(account, symbol) if self._lookup is not None else ZERO
        return base + self._pending_qty(account, symbol)

    def _pending_qty(self, account: str, symbol: str) -> Decimal:
        """Return the signed quantity this call's fills of ``account`` moved in ``symbol``
        (``ZERO`` plus each, in fill order)."""
        total = ZERO
        for fill in self._now:
            if fill.symbol == symbol and fill.account == account:
                qty = fill.quantity
                total = total + (qty if fill.side is _BUY else -qty)
        return total

    def _pending_cash(self, account: str) -> Decimal:
        """Return the cash this call's fills of ``account`` moved (``ZERO`` less each fill's
        signed quantity × price, then its fee, in fill order)."""
        total = ZERO
        for fill in self._now:
            if fill.account == account:
                qty = fill.quantity
                total = total - (qty if fill.side is _BUY else -qty) * fill.price - fill.fee
        return total

    def _market_at_once(self, symbol: str, now: datetime, events: list[VenueEvent]) -> None:
        """Execute the held market orders of ``symbol`` now if the fill model has their moment:
        the last bar's close (``close``), the execution venue's book (``book``)."""
        model = self.config.model
        if model is _FM_CLOSE:
            last = self._last.get(symbol)
            if last is not None:
                self._run_held(symbol, now, last.close, last, events)
        elif model is _FM_BOOK and self._has_exec_book(symbol):
            self._run_held(symbol, now, None, None, events)

    def _hold(
        self, order: Order, children: Sequence[Order], now: datetime, events: list[VenueEvent]
    ) -> None:
        if order.client_order_id in self._held:
            self._reject(order, now, f"duplicate client_order_id {order.client_order_id!r}", events)
            return
        self._held[order.client_order_id] = order
        self._waiting.setdefault(order.symbol, []).append((order, tuple(children)))

    def _waiting_children(self, entry: Order) -> Sequence[Order]:
        for order, children in self._waiting.get(entry.symbol, ()):
            if order is entry:
                return children
        return ()

    def _at_open(self, bar: Bar, events: list[VenueEvent]) -> None:
        """Execute held market orders at the bar's open, then release waiting orders there."""
        symbol, start = bar.symbol, bar.ts
        waiting = self._waiting.pop(symbol, None)
        if waiting or (self._live and not self._inner_idle()):  # (no ``_live``: idle, no call)
            self._sync(symbol, events)
        # else nothing works at the inner venue: its book is brought up to date when next needed
        if waiting or self._live.get(symbol):
            # A sizeless print moves the inner book to the open (and fires gapped stops).
            print_ = Trade(symbol, start, bar.open, 0.0, self.config.name)
            events += self._track(self.inner.on_trade(print_))
        self._run_held(symbol, start, bar.open, bar, events)
        if not waiting:
            return
        for order, children in waiting:
            if self._held.pop(order.client_order_id, None) is None:
                continue  # cancelled while waiting
            if children:
                call = lambda o=order, c=children: self.inner.submit_bracket(o, c, start)  # noqa: E731
            else:
                call = lambda o=order: self.inner.submit(o, start)  # noqa: E731
            self._inner_call(events, symbol, call, order, *children)

    # ----------------------------------------------------------------- executing market orders

    def _run_held(
        self,
        symbol: str,
        ts: datetime,
        price: float | None,
        bar: Bar | None,
        events: list[VenueEvent],
    ) -> None:
        """Execute held market orders of ``symbol`` in time order at ``price`` (None: the book)."""
        queue = self._market.get(symbol)
        if not queue:
            return
        # A volume cap's budget (``_budget`` holds one only under a cap).
        capped = self._cap_frac is not None and price is not None
        for order in tuple(queue):
            if order.status is _PENDING:  # ``transition(_OPEN, ts)``, written out: it is legal
                order.status = _OPEN
                order.updated_ts = ts
                events.append(_new_event(_EV_ACCEPTED, order, ts, _OPEN))
            if capped:
                budget = self._budget.get(symbol)
                used = self._execute(order, ts, price, bar, budget, events)
                if budget is not None:
                    self._budget[symbol] = budget - used
            else:
                self._execute(order, ts, price, bar, None, events)
            status = order.status
            if status in _WORKING:
                if order.tif is _IOC or order.tif is _FOK:
                    self._end(order, _CANCELLED, ts, "ioc: unfilled remainder", events)
            elif status in _TERMINAL:
                if self._waiting:
                    self._forget(order)
                else:  # ``_forget``, written out: the order is held and (unless ended) queued
                    self._held.pop(order.client_order_id, None)
                    if order in queue:
                        queue.remove(order)

    def _execute(
        self,
        order: Order,
        ts: datetime,
        price: float | None,
        bar: Bar | None,
        budget: Decimal | None,
        events: list[VenueEvent],
    ) -> Decimal:
        """Execute what ``order`` may take now; return the quantity filled.

        At a ``price`` (next open, close): all of it there, slipped by the slippage model, as
        a single level of unlimited size would fill it, cut by the account's buying power at
        that price (``book_fill`` books it, as every simulated venue does). On the book
        (``price`` None): one child market order at the execution venue, adopted.
        """
        remaining = order.quantity - order.filled_quantity
        qty = remaining if budget is None or budget >= remaining else budget
        if order.reduce_only:
            cap = self._reduce_cap(order)
            if cap <= ZERO:
                self._end(order, _CANCELLED, ts, "reduce_only: position is flat", events)
                return ZERO
            if cap < qty:
                qty = cap
        if order.tif is _FOK and qty < remaining and price is not None:
            self._end(order, _CANCELLED, ts, "fok: not enough liquidity", events)
            return ZERO
        if qty <= ZERO:
            return ZERO
        if price is None:
            return self._execute_on_book(order, ts, qty, events)
        slippage = self.config.slippage
        if slippage.__class__ is not NoSlippage:
            price = slippage.adjust(price, order.sign, float(qty), bar)
        cfg = self.executor.config
        # ``tidy_decimal``'s whole cents (a bar's open, most often), written out.
        px = (
            (n * _CENT if n % 10 else n // 10 * _DIME)
            if 0.01 <= price < 1e8 and (n := int(price * 100.0 + 0.5)) / 100.0 == price
            else tidy_decimal(price)
        )
        cut = ""
        guard = self._guard
        if guard is not None:  # ``_guarded``, written out
            if self._now:  # an earlier fill of this call (seldom)
                account = order.account
                pending = self._pending_qty(account, order.symbol)
                moved = self._pending_cash(account)
            else:
                pending = moved = ZERO
            qty, cut = guard(order, qty, px, cfg.taker_fee_bps, pending, moved)
        if qty > ZERO:
            fill = book_fill(cfg, order, qty, px, _TAKER, ts, self.config.name)
            # ``_emit_fill``, written out
            events.append(_new_event(_EV_FILL, order, ts, order.status, fill))
            self._now.append(fill)
        if cut and order.status in _WORKING:
            self._end(order, _CANCELLED, ts, cut, events)
        return qty

    def _execute_on_book(
        self, order: Order, ts: datetime, qty: Decimal, events: list[VenueEvent]
    ) -> Decimal:
        """Send one child market order for ``qty`` of ``order`` to the execution venue."""
        self._children += 1
        child = Order(
            symbol=order.symbol,
            side=order.side,
            quantity=qty,
            account=order.account,
            client_order_id=f"{order.client_order_id}~{self._children}",
            tif=_FOK if order.tif is _FOK else _GTC,
            reduce_only=order.reduce_only,
            strategy=order.strategy,
            created_ts=ts,
        )
        return self._adopt(order, self.executor.submit(child, ts), events)

    def _adopt(
        self, order: Order, child_events: list[VenueEvent], events: list[VenueEvent]
    ) -> Decimal:
        """Book the child's fills against ``order``; return the quantity filled."""
        filled = ZERO
        for ev in child_events:
            fill = ev.fill
            if fill is not None:
                order.fill(fill.quantity, fill.price, fill.fee, fill.ts)
                own = replace(
                    fill,
                    order_id=order.client_order_id,
                    venue_trade_id=f"{self.config.name}:{order.client_order_id}:"
                    f"{order.filled_quantity}",
                )
                self._emit_fill(order, own, events)
                filled += fill.quantity
            elif ev.kind is VenueEventKind.CANCELLED and ev.reason.startswith("fok"):
                self._end(order, OrderStatus.CANCELLED, ev.ts, ev.reason, events)
            elif ev.reason.startswith(("reduce_only", "buying power")) and order.is_working:
                self._end(order, OrderStatus.CANCELLED, ev.ts, ev.reason, events)
        return filled

    def _emit_fill(self, order: Order, fill: Fill, events: list[VenueEvent]) -> None:
        events.append(_new_event(_EV_FILL, order, fill.ts, order.status, fill))
        self._now.append(fill)

    def _set_exec_book(self, book: BookSnapshot) -> None:
        slip = self.config.slippage
        if isinstance(slip, FixedBps) and slip.bps:
            book = replace(
                book,
                bids=tuple((tidy_price(slip.adjust(p, -1, s, None)), s) for p, s in book.bids),
                asks=tuple((tidy_price(slip.adjust(p, 1, s, None)), s) for p, s in book.asks),
            )
        self.executor.on_book(book)

    def _has_exec_book(self, symbol: str) -> bool:
        bid, ask = self.executor.best_bid_ask(symbol)
        return bid is not None or ask is not None

    def _cap(self, bar: Bar | None) -> Decimal | None:
        cap = self.config.volume_cap
        if cap is None or bar is None:
            return None
        return floor_to_step(to_decimal(bar.volume * cap), self.config.quantity_step)

    def _capped(self, bar: Bar) -> Bar:
        cap = self.config.volume_cap
        return bar if cap is None else replace(bar, volume=bar.volume * cap)

    def _reduce_cap(self, order: Order) -> Decimal:
        account, symbol = order.account, order.symbol
        lookup = self._lookup  # ``_positions``, written out
        held = (ZERO if lookup is None else lookup(account, symbol)) + (
            self._pending_qty(account, symbol) if self._now else ZERO
        )
        if order.side is _BUY:
            return -held if held < ZERO else ZERO
        return held if held > ZERO else ZERO

    # ----------------------------------------------------------------- lifecycle

    def _reject(self, order: Order, now: datetime, reason: str, events: list[VenueEvent]) -> None:
        order.transition(OrderStatus.REJECTED, now, reason)
        events.append(VenueEvent(VenueEventKind.REJECTED, order, now, order.status, None, reason))

    def _end(
        self,
        order: Order,
        status: OrderStatus,
        ts: datetime | None,
        reason: str,
        events: list[VenueEvent],
    ) -> None:
        order.transition(status, ts, reason)
        events.append(VenueEvent(VenueEventKind.CANCELLED, order, ts, order.status, None, reason))
        self._forget(order)

    def _forget(self, order: Order) -> None:
        self._held.pop(order.client_order_id, None)
        queue = self._market.get(order.symbol)
        if queue and order in queue:
            queue.remove(order)
        waiting = self._waiting.get(order.symbol)
        if waiting:
            self._waiting[order.symbol] = [w for w in waiting if w[0] is not order]

    def _inner_call(self, events: list[VenueEvent], symbol: str, call, *orders: Order) -> None:
        """Run ``call`` on the inner venue with its book current and track what stays working."""
        self._sync(symbol, events)
        live = self._live.setdefault(symbol, set())
        live.update(o.client_order_id for o in orders)
        events += self._track(call())
        for order in orders:
            if order.is_terminal:
                live.discard(order.client_order_id)

    def _track(self, inner_events: list[VenueEvent]) -> list[VenueEvent]:
        for ev in inner_events:
            order = ev.order
            fill = ev.fill
            if fill is not None:
                self._now.append(fill)
            if order.is_terminal:
                live = self._live.get(order.symbol)
                if live:
                    live.discard(order.client_order_id)
        return inner_events

    def _sync(self, symbol: str, events: list[VenueEvent]) -> None:
        """Show the inner venue the last bar it skipped (nothing was working: fast path)."""
        bar = self._stale.pop(symbol, None)
        if bar is not None:
            # Other symbols' DAY orders may expire on the way: keep those events.
            events += self._track(self.inner.on_bar(bar))

    @staticmethod
    def _bar_end(bar: Bar) -> datetime:
        return bar.ts + BAR_LENGTH[bar.timeframe]
