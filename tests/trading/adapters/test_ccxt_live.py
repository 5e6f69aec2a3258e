"""``CcxtLiveVenue`` (real ccxt binance client) against a local fake of Binance's spot REST API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fakes.exchange_binance import FakeBinanceExchange
from tests.trading.adapters.conftest import RecordingSleep, VenueFactory, within
from trading.adapters.base import RetryPolicy, VenueAuthError, VenueOrderStatus, VenueUnavailable
from trading.adapters.ccxt_live import CcxtLiveVenue
from trading.engine.errors import UnknownOrder
from trading.engine.orders import (
    Liquidity,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from trading.engine.venue import VenueEvent, VenueEventKind

pytestmark = pytest.mark.timeout(5)

D = Decimal
ACCEPTED, FILL = VenueEventKind.ACCEPTED, VenueEventKind.FILL
CANCELLED, REJECTED = VenueEventKind.CANCELLED, VenueEventKind.REJECTED


def limit_buy(qty: str = "0.5", price: str = "100", **kwargs: object) -> Order:
    """Return a pending GTC limit buy of BTC-USD."""
    return Order(
        symbol="BTC-USD",
        side=OrderSide.BUY,
        quantity=D(qty),
        type=OrderType.LIMIT,
        price=D(price),
        account="live-1",
        **kwargs,  # type: ignore[arg-type]
    )


def market_buy(qty: str = "0.1") -> Order:
    """Return a pending market buy of BTC-USD."""
    return Order(symbol="BTC-USD", side=OrderSide.BUY, quantity=D(qty), account="live-1")


def kinds(events: list[VenueEvent]) -> list[VenueEventKind]:
    """Return the event kinds in order."""
    return [e.kind for e in events]


def requests_to(fake: FakeBinanceExchange, method: str, path: str) -> list[dict[str, list[str]]]:
    """Return the query parameters of every request the fake got for ``method path``."""
    hits = []
    for got_method, path_qs, _headers in fake.requests:
        parts = urlsplit(path_qs)
        if got_method == method and parts.path == path:
            hits.append(parse_qs(parts.query))
    return hits


# ------------------------------------------------------------------------------- submission


async def test_submit_limit_order_opens_under_our_client_order_id(
    venue: CcxtLiveVenue, fake: FakeBinanceExchange
) -> None:
    order = limit_buy()

    events = await within(venue.submit(order))

    assert kinds(events) == [ACCEPTED]
    assert order.status is OrderStatus.OPEN
    placed = fake.by_client_id(order.client_order_id)
    assert placed is not None and order.venue_order_id == str(placed.order_id)
    assert (placed.type, placed.side, placed.time_in_force) == ("LIMIT", "BUY", "GTC")
    assert (placed.orig_qty, placed.price) == (D("0.5"), D("100"))
    assert fake.locked["USDT"] == D("50")
    assert fake.bad_auth == []
    for _method, _path, headers in fake.requests:
        assert headers.get("X-MBX-APIKEY")


async def test_market_order_fills_at_once_with_fee_in_quote_currency(
    venue: CcxtLiveVenue, fake: FakeBinanceExchange
) -> None:
    order = market_buy("0.1")

    events = await within(venue.submit(order))

    assert kinds(events) == [ACCEPTED, FILL]
    fill = events[1].fill
    assert fill is not None
    assert (fill.quantity, fill.price, fill.liquidity) == (D("0.1"), D("50000"), Liquidity.TAKER)
    # Binance charges a buy's commission in the base asset: 0.0001 BTC at 50,000.
    assert fill.fee == D("5")
    assert fill.venue_trade_id == str(fake.trades[0].id)
    assert (fill.order_id, fill.account) == (order.client_order_id, "live-1")
    assert order.status is OrderStatus.FILLED and order.fees == D("5")


async def test_partial_fills_are_observed_through_fetch_and_reconcile(
    venue: CcxtLiveVenue, fake: FakeBinanceExchange
) -> None:
    order = limit_buy("0.5", "100")
    await within(venue.submit(order))
    first = fake.fill(order.client_order_id, "0.2", "99.5")

    events = await within(venue.fetch_order(order))

    assert kinds(events) == [FILL]
    fill = events[0].fill
    assert fill is not None
    assert (fill.quantity, fill.price, fill.liquidity) == (D("0.2"), D("99.5"), Liquidity.MAKER)
    assert fill.fee == D("0.0002") * D("99.5")
    assert fill.venue_trade_id == str(first.id)
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert await within(venue.fetch_order(order)) == []  # nothing new: nothing booked twice

    fake.fill(order.client_order_id, "0.3", "100")
    result = await within(venue.reconcile([order]))

    assert kinds(result.events) == [FILL] and result.missing == []
    assert result.events[0].fill is not None and result.events[0].fill.quantity == D("0.3")
    assert order.status is OrderStatus.FILLED
    assert order.filled_quantity == D("0.5")
    assert order.fees == D("0.0002") * D("99.5") + D("0.0003") * D("100")


async def test_cancel_books_the_fills_then_cancels(
    venue: CcxtLiveVenue, fake: FakeBinanceExchange
) -> None:
    order = limit_buy("0.5", "100")
    await within(venue.submit(order))
    fake.fill(order.client_order_id, "0.1")

    events = await within(venue.cancel(order, "strategy exit"))

    assert kinds(events) == [FILL, CANCELLED]
    assert events[1].reason == "strategy exit"
    assert order.status is OrderStatus.CANCELLED and order.filled_quantity == D("0.1")
    placed = fake.by_client_id(order.client_order_id)
    assert placed is not None and placed.status == "CANCELED"
    assert fake.locked["USDT"] == 0


async def test_cancel_of_an_order_filled_meanwhile_reports_the_fill(
    venue: CcxtLiveVenue, fake: FakeBinanceExchange
) -> None:
    order = limit_buy("0.5", "100")
    await within(venue.submit(order))
    fake.fill(order.client_order_id, "0.5")

    events = await within(venue.cancel(order))

    assert kinds(events) == [FILL]
    assert order.status is OrderStatus.FILLED


async def test_cancel_of_an_order_the_exchange_never_saw_raises(venue: CcxtLiveVenue) -> None:
    with pytest.raises(UnknownOrder):
        await within(venue.cancel(limit_buy()))


async def test_insufficient_funds_rejects_with_the_exchange_reason(
    venue: CcxtLiveVenue, fake: FakeBinanceExchange
) -> None:
    order = limit_buy("10", "50000")  # 500,000 USDT of 100,000

    events = await within(venue.submit(order))

    assert kinds(events) == [REJECTED]
    assert order.status is OrderStatus.REJECTED
    assert "InsufficientFunds" in order.reject_reason
    assert "Account has insufficient balance for requested action." in events[0].reason
    assert fake.orders == {}


# ------------------------------------------------------------------- timeouts and retries


async def test_timeout_after_the_exchange_stored_the_order_never_duplicates(
    make_venue: VenueFactory, fake: FakeBinanceExchange, sleeps: RecordingSleep
) -> None:
    venue = make_venue(timeout_ms=300)
    fake.hang_next_create(4.0, store=True)  # accepted and filled, answered too late
    order = market_buy("0.1")

    events = await within(venue.submit(order))

    assert fake.create_requests == 1 and len(fake.orders) == 1
    lookups = requests_to(fake, "GET", "/api/v3/order")
    assert lookups and lookups[0]["origClientOrderId"] == [order.client_order_id]
    assert sleeps.delays == [0.5]
    assert kinds(events) == [ACCEPTED, FILL]
    assert order.status is OrderStatus.FILLED
    assert order.venue_order_id == str(next(iter(fake.orders)))
    fill = events[1].fill
    assert fill is not None and fill.fee == D("5")  # fee from the order's trades
    assert fill.venue_trade_id == str(fake.trades[0].id)


async def test_timeout_before_the_exchange_saw_it_sends_once_more(
    make_venue: VenueFactory, fake: FakeBinanceExchange
) -> None:
    venue = make_venue(timeout_ms=300)
    fake.hang_next_create(4.0, store=False)  # lost on the way
    order = limit_buy()

    events = await within(venue.submit(order))

    assert kinds(events) == [ACCEPTED]
    assert fake.create_requests == 2 and len(fake.orders) == 1
    assert len(requests_to(fake, "GET", "/api/v3/order")) == 1  # looked up before re-sending


async def test_network_errors_are_retried_with_backoff(
    venue: CcxtLiveVenue, fake: FakeBinanceExchange, sleeps: RecordingSleep
) -> None:
    fake.fail("POST", "/api/v3/order", status=503, times=2)
    order = limit_buy()

    events = await within(venue.submit(order))

    assert kinds(events) == [ACCEPTED]
    assert sleeps.delays == [0.5, 1.0]
    assert fake.create_requests == 3 and len(fake.orders) == 1


async def test_a_failed_lookup_never_leads_to_a_blind_resend(
    make_venue: VenueFactory, fake: FakeBinanceExchange, sleeps: RecordingSleep
) -> None:
    venue = make_venue(timeout_ms=300)
    fake.hang_next_create(4.0, store=True)
    fake.fail("GET", "/api/v3/order", status=502, times=1)
    order = limit_buy()

    events = await within(venue.submit(order))

    assert kinds(events) == [ACCEPTED]
    assert fake.create_requests == 1 and len(fake.orders) == 1
    assert sleeps.delays == [0.5, 1.0]


async def test_retries_are_bounded_and_leave_the_order_pending_for_reconcile(
    make_venue: VenueFactory, fake: FakeBinanceExchange, sleeps: RecordingSleep
) -> None:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    clock = [now]
    venue = make_venue(
        retry=RetryPolicy(max_retries=2, initial=0.25, jitter=0.0), clock=lambda: clock[0]
    )
    fake.fail("POST", "/api/v3/order", status=503, times=10)
    order = limit_buy(created_ts=now)

    with pytest.raises(VenueUnavailable, match="stays pending"):
        await within(venue.submit(order))

    assert order.status is OrderStatus.PENDING
    assert fake.create_requests == 3 and fake.orders == {}
    assert sleeps.delays == [0.25, 0.5]
    # Within the grace period a submit might still land: the order stays pending.
    assert await within(venue.fetch_order(order)) == []
    clock[0] = now + timedelta(minutes=5)
    result = await within(venue.reconcile([order]))
    assert kinds(result.events) == [REJECTED]
    assert "never arrived" in order.reject_reason


async def test_resubmitting_after_a_restart_adopts_the_existing_order(
    make_venue: VenueFactory, fake: FakeBinanceExchange
) -> None:
    original = limit_buy()
    await within(make_venue().submit(original))
    # The process died before storing the answer; the order reloads as pending, same id.
    reloaded = limit_buy(client_order_id=original.client_order_id)

    events = await within(make_venue().submit(reloaded))

    assert kinds(events) == [ACCEPTED]
    assert reloaded.venue_order_id == original.venue_order_id
    assert len(fake.orders) == 1 and fake.create_requests == 2  # the second got -2010


# ------------------------------------------------------------------------- account queries


async def test_open_orders_and_balance(venue: CcxtLiveVenue, fake: FakeBinanceExchange) -> None:
    order = limit_buy("0.5", "100")
    await within(venue.submit(order))

    states = await within(venue.open_orders(["BTC-USD"]))
    balances = await within(venue.balance())

    assert [s.client_order_id for s in states] == [order.client_order_id]
    state = states[0]
    assert (state.symbol, state.status, state.quantity) == (
        "BTC-USD",
        VenueOrderStatus.OPEN,
        D("0.5"),
    )
    usdt = balances["USDT"]
    assert (usdt.free, usdt.used, usdt.total) == (D("99950"), D("50"), D("100000"))


async def test_my_trades_translates_executions(
    venue: CcxtLiveVenue, fake: FakeBinanceExchange
) -> None:
    order = limit_buy("0.5", "100")
    await within(venue.submit(order))
    fake.fill(order.client_order_id, "0.2", "99", maker=False)

    trades = await within(venue.my_trades("BTC-USD"))

    assert len(trades) == 1
    trade = trades[0]
    assert (trade.venue_order_id, trade.quantity, trade.price) == (
        order.venue_order_id,
        D("0.2"),
        D("99"),
    )
    assert trade.liquidity is Liquidity.TAKER and trade.fee == D("0.0002") * D("99")


async def test_bad_credentials_raise_on_queries_and_reject_orders(
    make_venue: VenueFactory, fake: FakeBinanceExchange
) -> None:
    venue = make_venue(secret="not-the-secret")

    with pytest.raises(VenueAuthError):
        await within(venue.balance())
    events = await within(venue.submit(limit_buy()))

    assert kinds(events) == [REJECTED] and "AuthenticationError" in events[0].reason
    assert fake.bad_auth and fake.orders == {}


# --------------------------------------------------------------------- order translation


async def test_stop_orders_map_to_binance_spot_types(
    venue: CcxtLiveVenue, fake: FakeBinanceExchange
) -> None:
    stop_limit = Order(
        symbol="BTC-USD",
        side=OrderSide.BUY,
        quantity=D("0.01"),
        type=OrderType.STOP_LIMIT,
        price=D("111"),
        stop_price=D("110"),
    )
    take_profit = Order(
        symbol="BTC-USD",
        side=OrderSide.BUY,
        quantity=D("0.01"),
        type=OrderType.TAKE_PROFIT,
        stop_price=D("90"),
    )

    for order in (stop_limit, take_profit):
        assert kinds(await within(venue.submit(order))) == [ACCEPTED]

    placed = [fake.by_client_id(o.client_order_id) for o in (stop_limit, take_profit)]
    assert [(p.type, p.stop_price) for p in placed if p] == [
        ("STOP_LOSS_LIMIT", D("110")),
        ("TAKE_PROFIT", D("90")),
    ]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"type": OrderType.TRAILING_STOP, "price": None, "trail_amount": D("5")}, "trailing"),
        ({"tif": TimeInForce.DAY}, "DAY"),
        ({"quantity": D("0.123456")}, "step"),
        ({"price": D("100.001")}, "step"),
        ({"symbol": "DOGE-USD"}, "no market"),
        ({"client_order_id": "has spaces in it"}, "client_order_id"),
    ],
)
async def test_orders_the_venue_cannot_take_are_rejected_before_sending(
    venue: CcxtLiveVenue, fake: FakeBinanceExchange, changes: dict[str, object], reason: str
) -> None:
    fields: dict[str, object] = {
        "symbol": "BTC-USD",
        "side": OrderSide.BUY,
        "quantity": D("0.5"),
        "type": OrderType.LIMIT,
        "price": D("100"),
    }
    order = Order(**(fields | changes))  # type: ignore[arg-type]

    events = await within(venue.submit(order))

    assert kinds(events) == [REJECTED] and reason in order.reject_reason
    assert fake.create_requests == 0
