"""The runtime trading live through ccxt against a local fake of Binance's REST API."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import pytest

from marketdata.feeds import SimulatedFeed
from tests.dbfaults import refuse_updates
from tests.fakes.exchange_binance import API_KEY, API_SECRET, FakeBinanceExchange, binance_market
from tests.runtime_harness import db, has_status, submit, until
from trading.adapters.base import RetryPolicy
from trading.adapters.ccxt_live import CcxtLiveVenue
from trading.models import Account, Fill, Order
from trading.runtime import RuntimeConfig, TradingRuntime

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("close_thread_connections")]


@pytest.fixture
def live_account(paper):
    """A live Binance account (the paper bootstrap provides symbols and limits)."""
    return Account.objects.create(name="live", mode="live", venue="binance",
                                  initial_capital=Decimal("100000"), cash=Decimal("100000"))


@contextlib.asynccontextmanager
async def live_engine(account: Account):
    """Run the runtime with a CcxtLiveVenue on a fake exchange; yield (runtime, exchange)."""
    exchange = FakeBinanceExchange()
    await exchange.start()
    venue = CcxtLiveVenue("binance", api_key=API_KEY, secret=API_SECRET,
                          api_urls=exchange.ccxt_urls(), markets=[binance_market()],
                          retry=RetryPolicy(max_retries=3, initial=0.05, maximum=0.2),
                          timeout_ms=2_000, config={"enableRateLimit": False})
    config = RuntimeConfig(account=account.name, symbols=["BTC-USD"], timeframe="1s",
                           control_interval=0.1, flush_interval=0.05, store_market_data=False)
    runtime = TradingRuntime(config, SimulatedFeed(["BTC-USD"], speed=5, seed=3), live=venue)
    runtime_task_stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(runtime_task_stop))
    try:
        await until(lambda: runtime.bridge is not None and runtime.summary.events > 10, "start")
        runtime.bridge.reconcile_interval = 0.1
        yield runtime, exchange
    finally:
        runtime_task_stop.set()
        await asyncio.wait_for(task, 60)
        await venue.close()
        await exchange.stop()


async def test_orders_are_stored_before_sending_and_fills_come_back(live_account):
    async with live_engine(live_account) as (runtime, exchange):
        market = await submit(live_account, "buy", "0.01")
        await until(lambda: has_status(market, "filled"), "market order filled at the exchange")
        assert exchange.create_requests == 1
        resting = await submit(live_account, "buy", "0.02", type="limit", price=Decimal("49000"))
        await until(lambda: has_status(resting, "open"), "limit order open at the exchange")
        exchange.fill(resting.client_order_id.hex, "0.005", "49000")
        await until(lambda: has_status(resting, "partially_filled"), "partial fill reconciled")
        assert await db(lambda: Order.objects.get(pk=resting.pk).filled_quantity)() == Decimal(
            "0.005")
    fills = await db(lambda: list(Fill.objects.filter(account=live_account)
                                  .values_list("quantity", flat=True)))()
    assert sorted(fills) == [Decimal("0.005"), Decimal("0.01")]
    assert len(exchange.orders) == 2, "no duplicate orders at the exchange"


async def test_insufficient_funds_is_rejected_with_the_exchange_reason(live_account):
    async with live_engine(live_account):
        too_big = await submit(live_account, "sell", "5", type="limit", price=Decimal("50000"))
        await until(lambda: has_status(too_big, "rejected"), "exchange rejection")
    stored = await db(Order.objects.get)(pk=too_big.pk)
    assert "insufficient balance" in stored.reject_reason.lower()


async def test_an_order_whose_write_ahead_fails_is_not_sent_until_it_is_stored(live_account):
    async with live_engine(live_account) as (runtime, exchange):
        await db(refuse_updates)("trading_order", True)
        try:
            order = await submit(live_account, "buy", "0.01")
            await until(lambda: not runtime.persistence.ok, "the write-ahead is refused")
            await asyncio.sleep(1.0)  # several retries of the refused write-ahead
            assert exchange.create_requests == 0, "an order left before it was stored"
        finally:
            await db(refuse_updates)("trading_order", False)
        await until(lambda: has_status(order, "filled"), "sent once stored, and filled")
        assert exchange.create_requests == 1
        assert runtime._failure is None


def test_live_venue_is_built_from_settings(settings, live_account):
    from trading.selectors import live_venue_for

    settings.BINANCE_API_KEY, settings.BINANCE_API_SECRET = "k", "s"
    settings.EXCHANGE_API_URLS = {"binance": "http://127.0.0.1:9/api/v3"}
    venue = live_venue_for(account=live_account)
    assert venue.exchange.id == "binance" and venue.exchange.apiKey == "k"
    assert venue.exchange.urls["api"]["private"] == "http://127.0.0.1:9/api/v3"
    asyncio.run(venue.close())
