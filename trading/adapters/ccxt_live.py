"""Live execution on Binance, Coinbase and Kraken through ccxt (``ccxt.async_support``).

Submission is idempotent by client order id. Every order carries our ``client_order_id`` to the
exchange (Binance ``newClientOrderId``, Coinbase ``client_order_id``, Kraken ``cl_ord_id`` through
ccxt's ``clientOrderId``). When a request fails with a network error (timeout, 5xx, rate limit)
the request may still have reached the exchange, so before sending it again the venue looks the
order up by that id (Binance ``GET /api/v3/order?origClientOrderId=``; elsewhere by scanning open
and recent closed orders) and adopts the order it finds. A lookup that itself fails never leads to
a blind re-send. Exchange errors (insufficient funds, invalid order, ...) reject the order with the
exchange's reason; exhausted retries raise ``VenueUnavailable`` and leave the order pending for
``reconcile``.

Spot only. Not supported live (rejected before sending, the OMS must emulate or refuse them):
trailing stops and DAY time in force. ``reduce_only`` is not forwarded: spot has no such flag
and a spot sell can never exceed the holdings anyway.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from marketdata.adapters.ccxt_ohlcv import ccxt_symbol
from trading.adapters.base import (
    Balance,
    LiveVenueError,
    Reconciliation,
    RetryPolicy,
    VenueAuthError,
    VenueConfigError,
    VenueOrderState,
    VenueOrderStatus,
    VenueTrade,
    VenueUnavailable,
    apply_state,
    reject,
)
from trading.engine.errors import OrderRejected, UnknownOrder
from trading.engine.money import ZERO
from trading.engine.orders import Liquidity, Order, OrderStatus, OrderType, TimeInForce
from trading.engine.orders import validate_order as validate_engine_order
from trading.engine.venue import VenueEvent

logger = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], datetime]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How far before an order's creation to search closed orders and trades (venue clock skew).
_LOOKBACK = timedelta(minutes=5)
_STATUSES = {
    "open": VenueOrderStatus.OPEN,
    "canceling": VenueOrderStatus.OPEN,  # a cancel in progress: still working until it lands
    "closed": VenueOrderStatus.CLOSED,
    "canceled": VenueOrderStatus.CANCELED,
    "cancelled": VenueOrderStatus.CANCELED,
    "expired": VenueOrderStatus.EXPIRED,
    "rejected": VenueOrderStatus.REJECTED,
}


@dataclass(frozen=True, slots=True)
class ExchangeDialect:
    """How one exchange names the client order id and how an order is found by it."""

    client_id_param: str  # create_order params key carrying our client order id
    client_id_pattern: str  # what the exchange accepts as a client order id
    lookup_param: str | None = None  # fetch_order params key to find an order by client id
    options: Mapping[str, Any] = field(default_factory=dict)  # ccxt options for this venue


DIALECTS: dict[str, ExchangeDialect] = {
    # ccxt maps clientOrderId too; the native name is unambiguous. Unique among open orders.
    "binance": ExchangeDialect(
        client_id_param="newClientOrderId",
        client_id_pattern=r"[A-Za-z0-9_-]{1,36}",
        lookup_param="origClientOrderId",
        options={"fetchMarkets": {"types": ["spot"]}},
    ),
    # ccxt's coinbase create_order drops a `clientOrderId` param and invents its own id, so the
    # native `client_order_id` is required; Coinbase returns the existing order on a repeat.
    "coinbase": ExchangeDialect(client_id_param="client_order_id", client_id_pattern=r".{1,128}"),
    # ccxt's kraken maps clientOrderId -> cl_ord_id (a UUID, 32 hex digits or <= 18 chars).
    "kraken": ExchangeDialect(
        client_id_param="clientOrderId",
        client_id_pattern=r"[0-9a-fA-F]{32}|[0-9a-fA-F-]{36}|.{1,18}",
    ),
}


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """The arguments of one ccxt ``create_order`` call."""

    symbol: str
    type: str
    side: str
    amount: float
    price: float | None
    params: dict[str, Any]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _dec(value: Any) -> Decimal | None:
    """Convert a ccxt number (float, str or None) to Decimal via its shortest repr."""
    if value is None or value == "":
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def _ms_to_utc(value: Any) -> datetime | None:
    if not isinstance(value, int | float) or value <= 0:
        return None
    return _EPOCH + timedelta(milliseconds=int(value))


def _to_ms(ts: datetime) -> int:
    return int((ts - _EPOCH) / timedelta(milliseconds=1))


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _override_root(current: Mapping[str, Any], api_urls: Mapping[str, str]) -> str:
    """Return what replaces ``scheme://host`` of every API URL, from the override of a section."""
    for key, url in api_urls.items():
        original = current.get(key)
        if not isinstance(original, str):
            continue
        old_path, new = urlsplit(original).path.rstrip("/"), url.rstrip("/")
        if not old_path:
            return new  # a bare host was replaced by the override's URL (prefix included)
        if urlsplit(new).path.endswith(old_path):
            return new[: -len(old_path)]  # same layout under the override's prefix
    first = urlsplit(next(iter(api_urls.values())))
    return f"{first.scheme}://{first.netloc}"


def _rebased(value: Any, root: str) -> Any:
    """Return ``value`` (a URL, or a dict/list of them) with its scheme and host set to ``root``."""
    if isinstance(value, Mapping):
        return {k: _rebased(v, root) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rebased(v, root) for v in value]
    if not isinstance(value, str):
        return value
    parts = urlsplit(value)
    base = root
    if parts.scheme in ("ws", "wss"):  # keep streams streams: http(s) -> ws(s)
        base = re.sub(r"^http", "ws", root)
    query = f"?{parts.query}" if parts.query else ""
    return f"{base}{parts.path}{query}"


def _is_duplicate(exc: ccxt.ExchangeError) -> bool:
    return isinstance(exc, ccxt.DuplicateOrderId) or "duplicate" in str(exc).lower()


class CcxtLiveVenue:
    """A live spot venue on a ccxt exchange (see the module docstring for the guarantees)."""

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: str,
        secret: str,
        password: str | None = None,
        sandbox: bool = False,
        api_urls: Mapping[str, str] | None = None,
        markets: Sequence[Mapping[str, Any]] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = _utc_now,
        rng: random.Random | None = None,
        timeout_ms: int = 10_000,
        pending_grace: timedelta = timedelta(minutes=2),
        config: Mapping[str, Any] | None = None,
    ) -> None:
        dialect = DIALECTS.get(exchange_id)
        if dialect is None:
            raise VenueConfigError(
                f"no live venue for {exchange_id!r}; use one of {list(DIALECTS)}"
            )
        if not api_key or not secret:
            raise VenueConfigError(f"{exchange_id}: api_key and secret are both required")
        self.name = exchange_id
        self.dialect = dialect
        self.retry = retry or RetryPolicy()
        self.pending_grace = pending_grace
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._client_id = re.compile(dialect.client_id_pattern)
        self.exchange = self._build(api_key, secret, password, timeout_ms, config)
        if sandbox:
            # ccxt's set_sandbox_mode fails obscurely on venues whose test URLs are empty.
            if not self.exchange.urls.get("test"):
                raise VenueConfigError(f"{exchange_id} has no sandbox/testnet in ccxt")
            self.exchange.set_sandbox_mode(True)
        if api_urls:
            self._point_at(api_urls)
        if markets is not None:
            self.exchange.set_markets(list(markets))

    def _build(
        self,
        api_key: str,
        secret: str,
        password: str | None,
        timeout_ms: int,
        config: Mapping[str, Any] | None,
    ) -> ccxt_async.Exchange:
        settings: dict[str, Any] = {
            "apiKey": api_key,
            "secret": secret,
            "timeout": timeout_ms,
            "enableRateLimit": True,
        }
        if password:
            settings["password"] = password
        if self.dialect.options:
            settings["options"] = copy.deepcopy(dict(self.dialect.options))
        settings.update(config or {})
        return getattr(ccxt_async, self.name)(settings)

    def _point_at(self, api_urls: Mapping[str, str]) -> None:
        """Send every API section (public, private, sapi, fapi, ...) to the overriding host."""
        urls = self.exchange.urls
        current = urls.get("api")
        if not isinstance(current, dict):
            urls["api"] = next(iter(api_urls.values()))
            return
        # A testnet must never leak signed calls to production: sections not named in the
        # override (Binance's sapi, fapi, dapi, v1, ...) keep their path on the override's host.
        root = _override_root(current, api_urls)
        urls["api"] = {**_rebased(current, root), **api_urls}

    async def close(self) -> None:
        """Close the exchange's HTTP session."""
        await self.exchange.close()

    # ------------------------------------------------------------------------- symbols, markets

    def market_symbol(self, symbol: str) -> str:
        """Return the ccxt symbol of ``BTC-USD`` on this exchange (``BTC/USDT`` on Binance)."""
        try:
            return ccxt_symbol(self.name, symbol)
        except ValueError as exc:
            raise OrderRejected(str(exc)) from exc

    async def ensure_markets(self) -> None:
        """Load the exchange's markets once (skipped when they were preloaded)."""
        if not self.exchange.markets:
            await self._call("load_markets", self.exchange.load_markets)

    def _market(self, market_symbol: str) -> Mapping[str, Any] | None:
        markets = self.exchange.markets or {}
        return markets.get(market_symbol)

    # ---------------------------------------------------------------------------- submission

    async def order_request(self, order: Order) -> OrderRequest:
        """Build the ccxt create_order call for ``order``; raise ``OrderRejected`` if unfit."""
        validate_engine_order(order)
        if order.type is OrderType.TRAILING_STOP:
            raise OrderRejected("trailing_stop orders are not supported on live venues")
        if order.tif is TimeInForce.DAY:
            raise OrderRejected("time in force DAY is not supported on live venues")
        if not self._client_id.fullmatch(order.client_order_id):
            raise OrderRejected(
                f"client_order_id {order.client_order_id!r} is not valid on {self.name}"
            )
        symbol = self.market_symbol(order.symbol)
        await self.ensure_markets()
        if self._market(symbol) is None:
            raise OrderRejected(f"{self.name} has no market {symbol}")
        self._check_step(symbol, "quantity", order.quantity, self.exchange.amount_to_precision)
        for label, value in (("price", order.price), ("stop_price", order.stop_price)):
            if value is not None:
                self._check_step(symbol, label, value, self.exchange.price_to_precision)
        kind, params = self._type_and_params(order)
        params[self.dialect.client_id_param] = order.client_order_id
        price = float(order.price) if order.price is not None else None
        return OrderRequest(symbol, kind, order.side.value, float(order.quantity), price, params)

    def _check_step(
        self, symbol: str, label: str, value: Decimal, to_precision: Callable[[str, Any], Any]
    ) -> None:
        """Refuse values the exchange would silently round (the order would differ from ours)."""
        try:
            rounded = _dec(to_precision(symbol, str(value)))
        except ccxt.BaseError as exc:  # below the minimum tick/lot: ccxt raises InvalidOrder
            raise OrderRejected(f"{label} {value}: {exc}") from exc
        if rounded != value:
            raise OrderRejected(
                f"{label} {value} is not a multiple of the {self.name} {symbol} step "
                f"(it would become {rounded})"
            )

    @staticmethod
    def _type_and_params(order: Order) -> tuple[str, dict[str, Any]]:
        kind = order.type
        params: dict[str, Any] = {}
        if order.price is not None:
            params["timeInForce"] = order.tif.value.upper()
        if kind is OrderType.MARKET:
            return "market", params
        if kind is OrderType.LIMIT:
            return "limit", params
        stop = float(order.stop_price) if order.stop_price is not None else None
        if kind is OrderType.TAKE_PROFIT:
            params["takeProfitPrice"] = stop
        else:  # stop and stop-limit: ccxt's unified trigger (Binance spot STOP_LOSS[_LIMIT])
            params["triggerPrice"] = stop
        return ("market" if order.price is None else "limit"), params

    async def submit(self, order: Order) -> list[VenueEvent]:
        """Place ``order`` exactly once; return its events (rejected, accepted, fills)."""
        now = self._clock()
        try:
            request = await self.order_request(order)
        except OrderRejected as exc:
            return reject(order, exc.reason, now)
        last: BaseException | None = None
        for attempt in range(self.retry.max_retries + 1):
            if attempt:
                await self._pause(attempt - 1, "create_order", last)
                try:
                    found = await self._lookup(order)
                except ccxt.OperationFailed as exc:
                    last = exc  # cannot tell whether it is there: never re-send blind
                    continue
                if found is not None:
                    return await self._apply(order, found)
            try:
                raw = await self.exchange.create_order(
                    request.symbol,
                    request.type,
                    request.side,
                    request.amount,
                    request.price,
                    dict(request.params),
                )
            except ccxt.OperationFailed as exc:
                last = exc
                continue
            except ccxt.ExchangeError as exc:
                return await self._refused(order, exc)
            return await self._apply(order, self._state(raw, order.symbol))
        raise VenueUnavailable(
            f"{self.name} create_order {order.client_order_id} gave no answer after "
            f"{self.retry.max_retries + 1} attempts ({_reason(last) if last else 'no error'}); "
            "the order stays pending until reconciled"
        ) from last

    async def _refused(self, order: Order, exc: ccxt.ExchangeError) -> list[VenueEvent]:
        if _is_duplicate(exc):
            # The id is already in use: an earlier attempt (or a run before a crash) placed it.
            found = await self._call("fetch_order", self._lookup, order)
            if found is not None:
                return await self._apply(order, found)
        return reject(order, _reason(exc), self._clock())

    # ------------------------------------------------------------------------- order queries

    async def fetch_order(self, order: Order) -> list[VenueEvent]:
        """Fetch ``order`` from the exchange and return the events its state implies.

        Raise ``UnknownOrder`` when a working order is not at the exchange. A pending order not
        found is rejected once ``pending_grace`` has passed since it was created.
        """
        state = await self._call("fetch_order", self._lookup, order)
        if state is not None:
            return await self._apply(order, state)
        now = self._clock()
        if order.status is OrderStatus.PENDING:
            created = order.created_ts
            if created is not None and now - created < self.pending_grace:
                return []  # a submit may still be in flight
            return reject(order, f"not found at {self.name}: the submit never arrived", now)
        raise UnknownOrder(f"{self.name} does not know order {order.client_order_id}")

    async def reconcile(self, orders: Sequence[Order]) -> Reconciliation:
        """Fetch every non-terminal order in ``orders``; collect events and unknown orders."""
        result = Reconciliation()
        for order in orders:
            if order.is_terminal:
                continue
            try:
                result.events += await self.fetch_order(order)
            except UnknownOrder:
                logger.error("%s: open order %s is unknown", self.name, order.client_order_id)
                result.missing.append(order)
        return result

    async def cancel(self, order: Order, reason: str = "cancelled by request") -> list[VenueEvent]:
        """Cancel ``order`` at the exchange; return its events (fills first, then cancelled).

        If the exchange refuses because the order is already done, its final state is fetched
        and applied instead; raise ``UnknownOrder`` if the exchange has never seen it.
        """
        if order.is_terminal:
            raise UnknownOrder(f"order {order.client_order_id} is {order.status.value}")
        if not order.venue_order_id:
            found = await self._call("fetch_order", self._lookup, order)
            if found is None:
                raise UnknownOrder(f"order {order.client_order_id} has not reached {self.name}")
            self._adopt(order, found)
        symbol = self.market_symbol(order.symbol)
        try:
            raw = await self._call(
                "cancel_order", self.exchange.cancel_order, order.venue_order_id, symbol
            )
        except (ccxt.OrderNotFound, ccxt.OperationRejected) as exc:
            found = await self._call("fetch_order", self._lookup, order)
            if found is None:
                raise UnknownOrder(f"{self.name} does not know {order.client_order_id}") from exc
            events = await self._apply(order, found)
            if not order.is_terminal:
                logger.warning("%s refused to cancel %s: %s", self.name, order.client_order_id, exc)
            return events
        return await self._apply(order, self._state(raw, order.symbol), reason=reason)

    @staticmethod
    def _adopt(order: Order, state: VenueOrderState) -> None:
        """Learn the venue order id of a pending order found at the exchange."""
        if state.client_order_id and state.client_order_id != order.client_order_id:
            raise LiveVenueError(f"lookup of {order.client_order_id} found {state.client_order_id}")
        order.venue_order_id = state.venue_order_id

    async def open_orders(self, symbols: Sequence[str]) -> list[VenueOrderState]:
        """Return the exchange's open orders on ``symbols`` (ours and any others)."""
        states = []
        for symbol in symbols:
            raws = await self._call(
                "fetch_open_orders", self.exchange.fetch_open_orders, self.market_symbol(symbol)
            )
            states += [self._state(raw, symbol) for raw in raws]
        return states

    async def my_trades(
        self, symbol: str, since: datetime | None = None, limit: int | None = None
    ) -> list[VenueTrade]:
        """Return this account's executions on ``symbol`` (since ``since``, if given)."""
        market_symbol = self.market_symbol(symbol)
        since_ms = _to_ms(since) if since is not None else None
        raws = await self._call(
            "fetch_my_trades", self.exchange.fetch_my_trades, market_symbol, since_ms, limit
        )
        market = self._market(market_symbol)
        return [self._trade(raw, symbol, market, "") for raw in raws]

    async def balance(self) -> dict[str, Balance]:
        """Return the account's holdings per currency."""
        raw = await self._call("fetch_balance", self.exchange.fetch_balance)
        free, used, total = (raw.get(k) or {} for k in ("free", "used", "total"))
        result = {}
        for currency in sorted(set(free) | set(used) | set(total)):
            result[currency] = Balance(
                currency,
                _dec(free.get(currency)) or ZERO,
                _dec(used.get(currency)) or ZERO,
                _dec(total.get(currency)) or ZERO,
            )
        return result

    # ------------------------------------------------------------------------------ internals

    async def _pause(self, attempt: int, what: str, exc: BaseException | None) -> None:
        delay = self.retry.delay(attempt, self._rng)
        logger.warning(
            "%s %s: %s; retry %d in %.2fs",
            self.name,
            what,
            _reason(exc) if exc else "error",
            attempt + 1,
            delay,
        )
        await self._sleep(delay)

    async def _call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await ``fn(*args)``, retrying network errors with back-off; translate auth errors."""
        for attempt in range(self.retry.max_retries + 1):
            try:
                return await fn(*args)
            except ccxt.OperationFailed as exc:
                if attempt == self.retry.max_retries:
                    raise VenueUnavailable(
                        f"{self.name} {what} failed after {attempt + 1} attempts: {_reason(exc)}"
                    ) from exc
                await self._pause(attempt, what, exc)
            except ccxt.AuthenticationError as exc:
                raise VenueAuthError(f"{self.name} {what}: {_reason(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _lookup(self, order: Order) -> VenueOrderState | None:
        """Find ``order`` at the exchange (one attempt); None when it is not there."""
        symbol = self.market_symbol(order.symbol)
        ex = self.exchange
        try:
            if order.venue_order_id:
                raw = await ex.fetch_order(order.venue_order_id, symbol)
            elif self.dialect.lookup_param:
                params = {self.dialect.lookup_param: order.client_order_id}
                raw = await ex.fetch_order("", symbol, params)
            else:
                raw = await self._scan(order, symbol)
        except ccxt.OrderNotFound:
            return None
        return None if raw is None else self._state(raw, order.symbol)

    async def _scan(self, order: Order, symbol: str) -> Mapping[str, Any] | None:
        """Find an order by client id among open, then recently closed, orders."""
        ex = self.exchange
        cid = order.client_order_id
        for raw in await ex.fetch_open_orders(symbol):
            if raw.get("clientOrderId") == cid:
                return raw
        if not ex.has.get("fetchClosedOrders"):
            return None
        since = _to_ms((order.created_ts or self._clock()) - _LOOKBACK)
        for raw in await ex.fetch_closed_orders(symbol, since):
            if raw.get("clientOrderId") == cid:
                return raw
        return None

    async def _apply(
        self, order: Order, state: VenueOrderState, *, reason: str = ""
    ) -> list[VenueEvent]:
        """Fetch the trades behind new fills when the snapshot lacks them, then apply it."""
        if state.filled > order.filled_quantity and not state.trades:
            state = replace(state, trades=await self._order_trades(order, state))
        return apply_state(order, state, self._clock(), reason=reason)

    async def _order_trades(self, order: Order, state: VenueOrderState) -> tuple[VenueTrade, ...]:
        """Return the executions of ``state``'s order (exact prices and fees), if available."""
        ex = self.exchange
        symbol = self.market_symbol(order.symbol)
        vid = state.venue_order_id
        try:
            if ex.has.get("fetchOrderTrades"):
                raws = await self._call("fetch_order_trades", ex.fetch_order_trades, vid, symbol)
            elif ex.has.get("fetchMyTrades"):
                since = _to_ms((order.created_ts or self._clock()) - _LOOKBACK)
                raws = await self._call("fetch_my_trades", ex.fetch_my_trades, symbol, since)
                raws = [r for r in raws if str(r.get("order") or "") == vid]
            else:
                return ()
        except ccxt.ExchangeError as exc:
            # Fills are still booked from the order's cumulative figures, fees maybe without.
            logger.warning("%s trades of %s unavailable: %s", self.name, vid, _reason(exc))
            return ()
        market = self._market(symbol)
        return tuple(self._trade(raw, order.symbol, market, vid) for raw in raws)

    def _state(self, raw: Mapping[str, Any], symbol: str) -> VenueOrderState:
        """Translate a ccxt unified order into a ``VenueOrderState`` for our ``symbol``."""
        info = raw.get("info") if isinstance(raw.get("info"), Mapping) else {}
        status_text = str(raw.get("status") or "open").lower()
        status = _STATUSES.get(status_text)
        if status is None:
            logger.warning("%s: unknown order status %r, treated as open", self.name, status_text)
            status = VenueOrderStatus.OPEN
        vid = str(raw.get("id") or "")
        market = self._market(self.market_symbol(symbol))
        average = _dec(raw.get("average"))
        trades = tuple(
            self._trade(t, symbol, market, vid)
            for t in raw.get("trades") or ()
            if isinstance(t, Mapping) and t.get("amount")
        )
        return VenueOrderState(
            venue_order_id=vid,
            # A Binance cancel answer's clientOrderId names the cancel; ours is the original.
            client_order_id=str(info.get("origClientOrderId") or raw.get("clientOrderId") or ""),
            symbol=symbol,
            side=str(raw.get("side") or ""),
            status=status,
            quantity=_dec(raw.get("amount")),
            filled=_dec(raw.get("filled")) or ZERO,
            price=_dec(raw.get("price")),
            average=average,
            cost=_dec(raw.get("cost")),
            fee=self._order_fee(raw, market, average or _dec(raw.get("price"))),
            ts=_ms_to_utc(raw.get("lastTradeTimestamp") or raw.get("lastUpdateTimestamp"))
            or _ms_to_utc(raw.get("timestamp")),
            trades=trades,
        )

    def _order_fee(
        self, raw: Mapping[str, Any], market: Mapping[str, Any] | None, price: Decimal | None
    ) -> Decimal | None:
        fees = [f for f in raw.get("fees") or () if isinstance(f, Mapping)]
        if not fees and isinstance(raw.get("fee"), Mapping):
            fees = [raw["fee"]]
        amounts = [self._fee_in_quote(f, market, price) for f in fees]
        known = [a for a in amounts if a is not None]
        return sum(known, ZERO) if known else None

    def _fee_in_quote(
        self, fee: Mapping[str, Any], market: Mapping[str, Any] | None, price: Decimal | None
    ) -> Decimal | None:
        """Return ``fee`` in the market's quote currency (None when unknown)."""
        cost = _dec(fee.get("cost"))
        if cost is None:
            return None
        currency = fee.get("currency")
        if market is None or currency in (None, market.get("quote")):
            return cost
        if currency == market.get("base") and price is not None:
            return cost * price
        # E.g. Binance fees paid in BNB: no price to convert with here; the balance shows it.
        logger.warning(
            "%s fee of %s %s not in the quote currency; booked as 0", self.name, cost, currency
        )
        return ZERO

    def _trade(
        self, raw: Mapping[str, Any], symbol: str, market: Mapping[str, Any] | None, vid: str
    ) -> VenueTrade:
        price = _dec(raw.get("price")) or ZERO
        maker = raw.get("takerOrMaker")
        fee = raw.get("fee")
        return VenueTrade(
            trade_id=str(raw.get("id") or ""),
            venue_order_id=str(raw.get("order") or vid),
            symbol=symbol,
            side=str(raw.get("side") or ""),
            quantity=_dec(raw.get("amount")) or ZERO,
            price=price,
            fee=self._fee_in_quote(fee, market, price) if isinstance(fee, Mapping) else None,
            liquidity=Liquidity(maker) if maker in ("maker", "taker") else None,
            ts=_ms_to_utc(raw.get("timestamp")),
        )


__all__ = ["DIALECTS", "CcxtLiveVenue", "ExchangeDialect", "OrderRequest"]
