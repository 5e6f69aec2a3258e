"""Drive an asynchronous live exchange from the synchronous OMS.

``LiveVenueBridge`` implements the engine's ``Venue`` protocol for the ``OrderManager``: a new
order stays ``pending`` and is queued; a worker task first **stores it** (write-ahead, so a crash
can never leave an order at the exchange that we do not know about), then places it through the
``LiveVenue`` (idempotent on the client order id) and books the events it returns. Cancels go the
same way. A reconcile loop polls the exchange for fills and state changes of every open order,
and re-places pending orders the exchange has never seen (safe: placement is idempotent).
Market data only keeps reference prices; the exchange does the matching.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal

from marketdata.engine.events import Bar, BookSnapshot, Quote, Trade, decimal_mid
from trading.adapters.base import LiveVenue, LiveVenueError, VenueAuthError
from trading.engine.errors import OrderRejected, UnknownOrder
from trading.engine.oms import OrderManager
from trading.engine.orders import Order, OrderStatus
from trading.engine.venue import VenueEvent

logger = logging.getLogger(__name__)


class WriteAheadFailed(Exception):
    """The order could not be stored before sending, so it was not sent."""


class LiveVenueBridge:
    """The OMS's venue for live trading; see the module docstring."""

    def __init__(
        self,
        live: LiveVenue,
        *,
        persist: Callable[[Order], Awaitable[None]],
        reconcile_interval: float = 2.0,
        write_retry: float = 0.5,
    ) -> None:
        self.live = live
        self.persist = persist
        self.reconcile_interval = reconcile_interval
        self.write_retry = write_retry  # seconds before a failed write-ahead is tried again
        self.oms: OrderManager | None = None
        self.outbox: asyncio.Queue[tuple[str, Order, str]] = asyncio.Queue()
        self.prices: dict[str, Decimal] = {}
        self.auth_failed = asyncio.Event()
        self._orders: dict[str, Order] = {}

    def attach(self, oms: OrderManager) -> None:
        """Book events through ``oms``."""
        self.oms = oms

    # ----------------------------------------------------------------- Venue (sync)

    def bind_positions(self, lookup) -> None:
        """Positions are the exchange's business; nothing to bind."""

    def submit(self, order: Order, now: datetime) -> list[VenueEvent]:
        """Queue the order; it stays pending until the exchange answers."""
        self._orders[order.client_order_id] = order
        self.outbox.put_nowait(("submit", order, ""))
        return []

    def submit_bracket(self, entry: Order, children: Sequence[Order], now: datetime):
        """Brackets need exchange-native OCO; not supported live yet."""
        raise OrderRejected("bracket orders are not supported on live venues yet")

    def cancel(self, client_order_id: str, now: datetime, reason: str = "") -> list[VenueEvent]:
        """Queue a cancel."""
        order = self._orders.get(client_order_id)
        if order is not None:
            self.outbox.put_nowait(("cancel", order, reason or "cancelled by request"))
        return []

    def restore(self, order: Order, now: datetime) -> list[VenueEvent]:
        """Remember a reloaded order; the first reconcile brings it up to date."""
        self._orders[order.client_order_id] = order
        return []

    def reference_price(self, symbol: str) -> Decimal | None:
        """Return the last price seen on the market-data feed."""
        return self.prices.get(symbol)

    def on_trade(self, trade: Trade) -> list[VenueEvent]:
        """Track the last price."""
        self.prices[trade.symbol] = Decimal(str(trade.price))
        return []

    def on_quote(self, quote: Quote) -> list[VenueEvent]:
        """Track the mid."""
        if quote.bid > 0 and quote.ask > 0:
            self.prices[quote.symbol] = decimal_mid(quote.bid, quote.ask)
        return []

    def on_book(self, book: BookSnapshot) -> list[VenueEvent]:
        """Track the mid."""
        if book.bids and book.asks:
            self.prices[book.symbol] = decimal_mid(book.bids[0][0], book.asks[0][0])
        return []

    def on_bar(self, bar: Bar) -> list[VenueEvent]:
        """Bars do not fill live orders."""
        return []

    def advance(self, now: datetime) -> list[VenueEvent]:
        """The exchange keeps time."""
        return []

    # ----------------------------------------------------------------- workers (async)

    def _apply(self, events: list[VenueEvent]) -> None:
        if events:
            self.oms.apply(events)
        for event in events:
            if event.order.is_terminal:
                self._orders.pop(event.order.client_order_id, None)

    async def run(self, stop: asyncio.Event) -> None:
        """Place and cancel queued orders until ``stop``; then drain what is queued."""
        while not (stop.is_set() and self.outbox.empty()):
            try:
                action, order, reason = await asyncio.wait_for(self.outbox.get(), 0.2)
            except TimeoutError:
                continue
            try:
                if action == "submit":
                    await self.persist(order)  # write-ahead: stored before it leaves
                    self._apply(await self.live.submit(order))
                else:
                    self._apply(await self.live.cancel(order, reason))
            except WriteAheadFailed as exc:  # not stored, so not sent: try again shortly
                logger.error("order %s not sent: %s", order.client_order_id, exc)
                await asyncio.sleep(self.write_retry)
                self.outbox.put_nowait((action, order, reason))
            except UnknownOrder as exc:
                logger.warning("live %s of %s: %s", action, order.client_order_id, exc)
            except VenueAuthError:
                logger.critical("exchange rejected our credentials; halting live trading")
                self.auth_failed.set()
                return
            except LiveVenueError as exc:  # stays pending; the reconcile loop retries
                logger.error("live %s of %s failed: %s", action, order.client_order_id, exc)

    async def reconcile_forever(self, stop: asyncio.Event) -> None:
        """Poll the exchange for every open order's state and fills."""
        while not stop.is_set():
            await self.reconcile_once()
            try:
                await asyncio.wait_for(stop.wait(), self.reconcile_interval)
            except TimeoutError:
                pass

    async def reconcile_once(self) -> None:
        """Apply the exchange's view of our open orders; re-place unknown pending ones."""
        orders = [o for o in self._orders.values() if not o.is_terminal]
        if not orders:
            return
        try:
            result = await self.live.reconcile(orders)
        except LiveVenueError as exc:
            logger.error("reconcile failed: %s", exc)
            return
        self._apply(result.events)
        for order in result.missing:
            if order.status is OrderStatus.PENDING:
                self.outbox.put_nowait(("submit", order, ""))
