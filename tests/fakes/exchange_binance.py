"""A local Binance spot REST exchange answering ccxt's private trading calls.

Endpoints (under ``/api/v3``, signed: ``X-MBX-APIKEY`` header plus ``timestamp`` and an
HMAC-SHA256 ``signature`` that is verified): ``POST/GET/DELETE order``, ``GET openOrders``,
``GET myTrades`` and ``GET account``. Markets are not served: preload them in the client with
``binance_market()`` (``exchange.set_markets``).

Matching is book-less and scripted: market orders fill at once at ``prices[symbol]``; limit and
stop orders rest until the test calls ``fill(...)``; IOC/FOK limits expire unfilled. Funds are
checked and locked like Binance (``-2010 Account has insufficient balance ...``); a repeated
``newClientOrderId`` of an open order gets ``-2010 Duplicate order sent.``. Buy commissions are
charged in the base asset and sell commissions in the quote asset, as Binance does without BNB.

Fault injection: ``fail(method, path, ...)`` answers the next requests with an error; ``hang_next
_create(seconds, store=True)`` makes the next order request wait past the client's timeout,
after storing the order (``store=True``: the request reached the matching engine) or without
storing it (``store=False``: lost on the way).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes._http import FakeHttpServer

API_KEY = "fake-binance-key"
API_SECRET = "fake-binance-secret"
OPEN = ("NEW", "PARTIALLY_FILLED")
ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT"]
ORDER_TYPES += ["TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]


def binance_market(
    symbol: str = "BTC/USDT", *, amount_step: float = 1e-5, price_step: float = 0.01
) -> dict[str, Any]:
    """Return a unified ccxt spot market for ``exchange.set_markets`` (what exchangeInfo gives)."""
    base, quote = symbol.split("/")
    return {
        "id": f"{base}{quote}",
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "baseId": base,
        "quoteId": quote,
        "type": "spot",
        "spot": True,
        "margin": False,
        "swap": False,
        "future": False,
        "option": False,
        "contract": False,
        "linear": None,
        "inverse": None,
        "active": True,
        "precision": {"amount": amount_step, "price": price_step},
        "limits": {"amount": {"min": amount_step}, "price": {"min": price_step}},
        # ccxt's binance create_order refuses order types missing from info.orderTypes.
        "info": {"symbol": f"{base}{quote}", "status": "TRADING", "orderTypes": ORDER_TYPES},
    }


def _s(value: Decimal) -> str:
    return f"{value:.8f}"


def binance_error(code: int, msg: str, status: int = 400) -> web.Response:
    """Return Binance's JSON error body."""
    return web.json_response({"code": code, "msg": msg}, status=status)


@dataclass(slots=True)
class FakeTrade:
    """One execution as ``GET /api/v3/myTrades`` reports it."""

    id: int
    order_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    is_buyer: bool
    is_maker: bool

    def as_json(self) -> dict[str, Any]:
        """Return the myTrades row."""
        return {
            "symbol": self.symbol,
            "id": self.id,
            "orderId": self.order_id,
            "orderListId": -1,
            "price": _s(self.price),
            "qty": _s(self.qty),
            "quoteQty": _s(self.price * self.qty),
            "commission": _s(self.commission),
            "commissionAsset": self.commission_asset,
            "time": self.time_ms,
            "isBuyer": self.is_buyer,
            "isMaker": self.is_maker,
            "isBestMatch": True,
        }


@dataclass(slots=True)
class FakeOrder:
    """One order held by the fake exchange."""

    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    orig_qty: Decimal
    price: Decimal
    stop_price: Decimal
    time_ms: int
    status: str = "NEW"
    executed_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    update_ms: int = 0
    trades: list[FakeTrade] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        """Return the unfilled quantity."""
        return self.orig_qty - self.executed_qty

    def common(self) -> dict[str, Any]:
        """Return the fields every order answer shares."""
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": _s(self.price),
            "origQty": _s(self.orig_qty),
            "executedQty": _s(self.executed_qty),
            "cummulativeQuoteQty": _s(self.cum_quote),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def query_json(self) -> dict[str, Any]:
        """Return the ``GET /api/v3/order`` answer."""
        return self.common() | {
            "stopPrice": _s(self.stop_price),
            "icebergQty": _s(Decimal(0)),
            "time": self.time_ms,
            "updateTime": self.update_ms or self.time_ms,
            "isWorking": self.status in OPEN,
            "workingTime": self.time_ms,
            "origQuoteOrderQty": _s(Decimal(0)),
        }

    def create_json(self, resp_type: str) -> dict[str, Any]:
        """Return the ``POST /api/v3/order`` answer (ACK, RESULT or FULL)."""
        ack = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "transactTime": self.update_ms or self.time_ms,
        }
        if resp_type == "ACK":
            return ack
        result = ack | self.common() | {"workingTime": self.time_ms}
        result["origQuoteOrderQty"] = _s(Decimal(0))
        if resp_type == "FULL":
            result["fills"] = [
                {
                    "price": _s(t.price),
                    "qty": _s(t.qty),
                    "commission": _s(t.commission),
                    "commissionAsset": t.commission_asset,
                    "tradeId": t.id,
                }
                for t in self.trades
            ]
        return result


class FakeBinanceExchange(FakeHttpServer):
    """Binance spot REST trading endpoints on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        balances: Mapping[str, Decimal | str] | None = None,
        prices: Mapping[str, Decimal | str] | None = None,
        fee_rate: Decimal = Decimal("0.001"),
        api_key: str = API_KEY,
        secret: str = API_SECRET,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        super().__init__()
        start = {"USDT": "100000", "BTC": "0"} if balances is None else balances
        self.free: dict[str, Decimal] = {a: Decimal(str(v)) for a, v in start.items()}
        self.locked: dict[str, Decimal] = {a: Decimal(0) for a in self.free}
        self.prices = {s: Decimal(str(p)) for s, p in (prices or {"BTCUSDT": "50000"}).items()}
        self.fee_rate = fee_rate
        self.api_key = api_key
        self.secret = secret
        self.orders: dict[int, FakeOrder] = {}
        self.trades: list[FakeTrade] = []
        self.create_requests = 0  # POST /api/v3/order received, whatever became of them
        self.bad_auth: list[str] = []  # why requests failed the signature checks
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._ids = itertools.count(1001)
        self._trade_ids = itertools.count(5001)
        self._failures: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        self._hang: tuple[float, bool] | None = None
        self._release = asyncio.Event()
        router = self.app.router
        router.add_post("/api/v3/order", self._create)
        router.add_get("/api/v3/order", self._query)
        router.add_delete("/api/v3/order", self._cancel)
        router.add_get("/api/v3/openOrders", self._open_orders)
        router.add_get("/api/v3/myTrades", self._my_trades)
        router.add_get("/api/v3/account", self._account)

    # ------------------------------------------------------------------------ test controls

    def ccxt_urls(self) -> dict[str, str]:
        """Return the ``urls['api']`` overrides that point ccxt's binance here."""
        return {"public": f"{self.url}/api/v3", "private": f"{self.url}/api/v3"}

    def fail(
        self, method: str, path: str, *, status: int = 503, body: Any = "busy", times: int = 1
    ) -> None:
        """Answer the next ``times`` requests to ``method path`` with ``status``/``body``."""
        queue = self._failures.setdefault((method.upper(), path), [])
        queue.extend([(status, body)] * times)

    def hang_next_create(self, seconds: float, *, store: bool = True) -> None:
        """Delay the answer to the next order request by ``seconds`` (stored first if ``store``)."""
        self._hang = (seconds, store)

    def by_client_id(self, client_order_id: str) -> FakeOrder | None:
        """Return the order with this client order id (the newest if reused)."""
        found = [o for o in self.orders.values() if o.client_order_id == client_order_id]
        return found[-1] if found else None

    def fill(
        self,
        client_order_id: str,
        qty: Decimal | str,
        price: Decimal | str | None = None,
        *,
        maker: bool = True,
    ) -> FakeTrade:
        """Execute ``qty`` of a resting order at ``price`` (default: its limit)."""
        order = self.by_client_id(client_order_id)
        if order is None or order.status not in OPEN:
            raise KeyError(f"no open order {client_order_id!r}")
        quantity = Decimal(str(qty))
        if not 0 < quantity <= order.remaining:
            raise ValueError(f"cannot fill {quantity} of remaining {order.remaining}")
        px = Decimal(str(price)) if price is not None else order.price or order.stop_price
        return self._execute(order, quantity, px, maker=maker)

    async def stop(self) -> None:
        """Release hanging requests, then stop serving."""
        self._release.set()
        await super().stop()

    # ------------------------------------------------------------------------------ plumbing

    def _assets(self, symbol: str) -> tuple[str, str]:
        for quote in ("USDT", "USDC", "BUSD", "BTC", "EUR"):
            if symbol.endswith(quote) and symbol != quote:
                return symbol[: -len(quote)], quote
        raise KeyError(symbol)

    async def _params(self, request: web.Request) -> tuple[dict[str, str], web.Response | None]:
        """Return the request's parameters, or an error answer when it is not properly signed."""
        if request.method == "POST":
            raw = await request.text()
        else:
            raw = request.query_string
        params = dict(parse_qsl(raw, keep_blank_values=True))
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            self.bad_auth.append(f"{request.method} {request.path}: bad or missing X-MBX-APIKEY")
            return params, binance_error(-2014, "API-key format invalid.", status=401)
        payload, sep, signature = raw.rpartition("&signature=")
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not sep or "timestamp" not in params or signature != expected:
            self.bad_auth.append(f"{request.method} {request.path}: bad or missing signature")
            return params, binance_error(-1022, "Signature for this request is not valid.")
        failures = self._failures.get((request.method, request.path))
        if failures:
            status, body = failures.pop(0)
            if isinstance(body, str):
                return params, web.Response(text=body, status=status, content_type="text/html")
            return params, web.json_response(body, status=status)
        return params, None

    def _find(self, params: Mapping[str, str]) -> FakeOrder | None:
        if "orderId" in params:
            order = self.orders.get(int(params["orderId"]))
        elif "origClientOrderId" in params:
            order = self.by_client_id(params["origClientOrderId"])
        else:
            return None
        return order if order is not None and order.symbol == params.get("symbol") else None

    # ------------------------------------------------------------------------------ matching

    def _reserve(self, order: FakeOrder) -> str | None:
        """Lock the funds an order needs; return Binance's refusal if they are not there."""
        base, quote = self._assets(order.symbol)
        if order.side == "BUY":
            px = order.price or order.stop_price or self.prices[order.symbol]
            asset, need = quote, order.orig_qty * px
        else:
            asset, need = base, order.orig_qty
        if self.free.get(asset, Decimal(0)) < need:
            return "Account has insufficient balance for requested action."
        self.free[asset] -= need
        self.locked[asset] = self.locked.get(asset, Decimal(0)) + need
        return None

    def _release_locked(self, order: FakeOrder, qty: Decimal) -> None:
        base, quote = self._assets(order.symbol)
        if order.side == "BUY":
            px = order.price or order.stop_price or self.prices[order.symbol]
            asset, amount = quote, qty * px
        else:
            asset, amount = base, qty
        self.locked[asset] -= amount
        self.free[asset] += amount

    def _execute(self, order: FakeOrder, qty: Decimal, px: Decimal, *, maker: bool) -> FakeTrade:
        """Book one execution: order totals, balances (from the locked funds) and the trade."""
        base, quote = self._assets(order.symbol)
        self._release_locked(order, qty)
        now = self._clock_ms()
        if order.side == "BUY":
            fee, fee_asset = qty * self.fee_rate, base
            self.free[quote] -= qty * px
            self.free[base] = self.free.get(base, Decimal(0)) + qty - fee
        else:
            fee, fee_asset = qty * px * self.fee_rate, quote
            self.free[base] -= qty
            self.free[quote] = self.free.get(quote, Decimal(0)) + qty * px - fee
        trade = FakeTrade(
            next(self._trade_ids),
            order.order_id,
            order.symbol,
            px,
            qty,
            fee,
            fee_asset,
            now,
            is_buyer=order.side == "BUY",
            is_maker=maker,
        )
        order.trades.append(trade)
        self.trades.append(trade)
        order.executed_qty += qty
        order.cum_quote += qty * px
        order.update_ms = now
        order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
        return trade

    def _new_order(self, params: Mapping[str, str]) -> FakeOrder | web.Response:
        symbol = params.get("symbol", "")
        if symbol not in self.prices:
            return binance_error(-1121, "Invalid symbol.")
        kind = params.get("type", "")
        if kind not in ORDER_TYPES:
            return binance_error(-1116, "Invalid orderType.")
        cid = params.get("newClientOrderId") or f"fake-{next(self._ids)}"
        existing = self.by_client_id(cid)
        if existing is not None and existing.status in OPEN:
            return binance_error(-2010, "Duplicate order sent.")
        now = self._clock_ms()
        return FakeOrder(
            order_id=next(self._ids),
            client_order_id=cid,
            symbol=symbol,
            side=params.get("side", ""),
            type=kind,
            time_in_force=params.get("timeInForce", "GTC"),
            orig_qty=Decimal(params.get("quantity", "0")),
            price=Decimal(params.get("price", "0")),
            stop_price=Decimal(params.get("stopPrice", "0")),
            time_ms=now,
            update_ms=now,
        )

    def _place(self, order: FakeOrder) -> web.Response | None:
        """Accept the order into the book, executing what the scripted model executes."""
        refusal = self._reserve(order)
        if refusal is not None:
            return binance_error(-2010, refusal)
        self.orders[order.order_id] = order
        if order.type == "MARKET":
            self._execute(order, order.orig_qty, self.prices[order.symbol], maker=False)
        elif order.type == "LIMIT" and order.time_in_force in ("IOC", "FOK"):
            self._release_locked(order, order.remaining)
            order.status = "EXPIRED"  # no book to trade against
        return None

    # ------------------------------------------------------------------------------ handlers

    async def _create(self, request: web.Request) -> web.StreamResponse:
        self.create_requests += 1
        params, error = await self._params(request)
        if error is not None:
            return error
        hang, self._hang = self._hang, None
        if hang is not None and not hang[1]:
            await self._wait(hang[0])  # lost on the way: nothing reaches the matching engine
            return web.Response(status=504, text="gateway timeout")
        order = self._new_order(params)
        if isinstance(order, web.Response):
            return order
        refusal = self._place(order)
        if refusal is not None:
            return refusal
        if hang is not None:
            await self._wait(hang[0])  # stored and executed; the answer comes too late
        return web.json_response(order.create_json(params.get("newOrderRespType", "FULL")))

    async def _wait(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._release.wait(), timeout=seconds)
        except TimeoutError:
            pass  # the delay itself is the point

    async def _query(self, request: web.Request) -> web.Response:
        params, error = await self._params(request)
        if error is not None:
            return error
        order = self._find(params)
        if order is None:
            return binance_error(-2013, "Order does not exist.")
        return web.json_response(order.query_json())

    async def _cancel(self, request: web.Request) -> web.Response:
        params, error = await self._params(request)
        if error is not None:
            return error
        order = self._find(params)
        if order is None or order.status not in OPEN:
            return binance_error(-2011, "Unknown order sent.")
        self._release_locked(order, order.remaining)
        order.status = "CANCELED"
        order.update_ms = self._clock_ms()
        body = order.common() | {
            "origClientOrderId": order.client_order_id,
            # Binance names the cancel request itself here, not the cancelled order.
            "clientOrderId": f"cancel-{next(self._ids)}",
            "transactTime": order.update_ms,
            "origQuoteOrderQty": _s(Decimal(0)),
        }
        return web.json_response(body)

    async def _open_orders(self, request: web.Request) -> web.Response:
        params, error = await self._params(request)
        if error is not None:
            return error
        symbol = params.get("symbol")
        rows = [
            o.query_json()
            for o in self.orders.values()
            if o.status in OPEN and (symbol is None or o.symbol == symbol)
        ]
        return web.json_response(rows)

    async def _my_trades(self, request: web.Request) -> web.Response:
        params, error = await self._params(request)
        if error is not None:
            return error
        if "symbol" not in params:
            return binance_error(-1102, "Mandatory parameter 'symbol' was not sent.")
        rows = [t for t in self.trades if t.symbol == params["symbol"]]
        if "orderId" in params:
            rows = [t for t in rows if t.order_id == int(params["orderId"])]
        if "startTime" in params:
            rows = [t for t in rows if t.time_ms >= int(params["startTime"])]
        if "fromId" in params:
            rows = [t for t in rows if t.id >= int(params["fromId"])]
        rows = rows[: int(params.get("limit", 500))]
        return web.json_response([t.as_json() for t in rows])

    async def _account(self, request: web.Request) -> web.Response:
        params, error = await self._params(request)
        if error is not None:
            return error
        balances = [
            {"asset": a, "free": _s(self.free[a]), "locked": _s(self.locked.get(a, Decimal(0)))}
            for a in sorted(self.free)
        ]
        body = {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self._clock_ms(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": 1,
        }
        return web.json_response(body)
