"""Coinbase and Kraken through the real ccxt clients with ``fetch`` replaced by recorded answers,
plus venue construction (symbols, sandbox, configuration errors)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import ccxt
import pytest

from tests.fakes.exchange_binance import binance_market
from tests.trading.adapters.conftest import RecordingSleep, within
from trading.adapters.base import RetryPolicy, VenueConfigError
from trading.adapters.ccxt_live import CcxtLiveVenue
from trading.engine.orders import Order, OrderSide, OrderStatus, OrderType
from trading.engine.venue import VenueEventKind

pytestmark = pytest.mark.timeout(5)

D = Decimal
KRAKEN_TXID = "OABCDE-FGHIJ-KLMNOP"
Answer = Callable[[str, str, str | None], Any]


class RecordedFetch:
    """Stands in for ``exchange.fetch``: records each request and answers from a script."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, str | None]] = []

    async def __call__(
        self, url: str, method: str = "GET", headers: Any = None, body: str | None = None
    ) -> Any:
        self.calls.append((method, url, body))
        answer = self.answers.pop(0)
        return answer(method, url, body)


def make(exchange_id: str, answers: list[Answer], **kwargs: Any) -> tuple[CcxtLiveVenue, Any]:
    """Return a venue on ``exchange_id`` whose HTTP calls go to a ``RecordedFetch``."""
    venue = CcxtLiveVenue(
        exchange_id,
        api_key="key",
        secret="c2VjcmV0",  # base64: Kraken decodes its secret
        markets=[binance_market("BTC/USD")],
        retry=RetryPolicy(max_retries=2, initial=0.1, jitter=0.0),
        sleep=RecordingSleep(),
        config={"enableRateLimit": False, "timeout_on_exit": 0},
        **kwargs,
    )
    recorder = RecordedFetch(answers)
    venue.exchange.fetch = recorder
    return venue, recorder


def limit_buy() -> Order:
    """Return a pending limit buy of 0.5 BTC-USD at 100."""
    return Order(
        symbol="BTC-USD",
        side=OrderSide.BUY,
        quantity=D("0.5"),
        type=OrderType.LIMIT,
        price=D("100"),
    )


def timeout(method: str, url: str, body: str | None) -> Any:
    """Answer as if the request timed out."""
    raise ccxt.RequestTimeout(f"{method} {url}")


async def test_coinbase_sends_our_id_as_client_order_id() -> None:
    order = limit_buy()

    def created(method: str, url: str, body: str | None) -> Any:
        sent = json.loads(body or "{}")
        return {
            "success": True,
            "order_id": "cb-1",
            "success_response": {
                "order_id": "cb-1",
                "product_id": "BTC-USD",
                "side": "BUY",
                "client_order_id": sent["client_order_id"],
            },
        }

    venue, recorder = make("coinbase", [created])
    try:
        events = await within(venue.submit(order))
    finally:
        await within(venue.close())

    assert [e.kind for e in events] == [VenueEventKind.ACCEPTED]
    method, url, body = recorder.calls[0]
    assert (method, url.endswith("/brokerage/orders")) == ("POST", True)
    # ccxt's coinbase drops a `clientOrderId` param; the native name must reach the wire.
    assert json.loads(body or "{}")["client_order_id"] == order.client_order_id
    assert order.venue_order_id == "cb-1"


async def test_kraken_timeout_finds_the_order_among_open_orders_by_cl_ord_id() -> None:
    order = limit_buy()

    def open_orders(method: str, url: str, body: str | None) -> Any:
        entry = {
            "cl_ord_id": order.client_order_id,
            "status": "open",
            "opentm": 1767614400.0,
            "vol": "0.5",
            "vol_exec": "0",
            "cost": "0",
            "fee": "0",
            "descr": {"pair": "BTCUSD", "type": "buy", "ordertype": "limit", "price": "100"},
        }
        return {"error": [], "result": {"open": {KRAKEN_TXID: entry}}}

    venue, recorder = make("kraken", [timeout, open_orders])
    try:
        events = await within(venue.submit(order))
    finally:
        await within(venue.close())

    assert [e.kind for e in events] == [VenueEventKind.ACCEPTED]
    assert order.status is OrderStatus.OPEN and order.venue_order_id == KRAKEN_TXID
    assert [url.rsplit("/", 1)[-1] for _m, url, _b in recorder.calls] == [
        "AddOrder",
        "OpenOrders",
    ]
    sent = parse_qs(recorder.calls[0][2] or "")
    assert sent["cl_ord_id"] == [order.client_order_id]  # ccxt maps clientOrderId to cl_ord_id


@pytest.mark.parametrize(
    ("exchange_id", "market"),
    [("binance", "BTC/USDT"), ("coinbase", "BTC/USD"), ("kraken", "BTC/USD")],
)
def test_symbols_map_to_each_venue(exchange_id: str, market: str) -> None:
    venue = CcxtLiveVenue(exchange_id, api_key="k", secret="c2VjcmV0")

    assert venue.market_symbol("BTC-USD") == market
    assert venue.market_symbol("eth-usd") == market.replace("BTC", "ETH")


def test_binance_sandbox_points_at_the_testnet() -> None:
    venue = CcxtLiveVenue("binance", api_key="k", secret="s", sandbox=True)

    assert venue.exchange.urls["api"]["private"].startswith("https://testnet.binance.vision")


@pytest.mark.parametrize(
    ("exchange_id", "kwargs", "message"),
    [
        ("bitmex", {}, "no live venue"),
        ("binance", {"secret": ""}, "both required"),
        ("kraken", {"sandbox": True}, "no sandbox"),
    ],
)
def test_bad_configuration_is_refused(
    exchange_id: str, kwargs: dict[str, Any], message: str
) -> None:
    settings: dict[str, Any] = {"api_key": "k", "secret": "c2VjcmV0"} | kwargs
    with pytest.raises(VenueConfigError, match=message):
        CcxtLiveVenue(exchange_id, **settings)
