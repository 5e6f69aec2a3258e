"""A TradingRuntime running in the test's event loop on the simulated market; polling helpers."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

from asgiref.sync import sync_to_async

from marketdata.feeds import SimulatedFeed
from risk.models import TradingState
from trading.models import Account, Order
from trading.runtime import RuntimeConfig, TradingRuntime
from trading.services import order_submit

db = sync_to_async


def runtime_for(account: Account, *, channel_layer=None, **overrides) -> TradingRuntime:
    """Return a TradingRuntime of ``account`` on the simulated market (seed 7, speed 10), its
    intervals short for a test; ``overrides`` set RuntimeConfig fields, ``channel_layer`` the
    layer it broadcasts on (default: the settings')."""
    config = RuntimeConfig(
        account=account.name,
        symbols=["BTC-USD"],
        timeframe="1s",
        control_interval=0.1,
        flush_interval=0.05,
        snapshot_interval=1.0,
        heartbeat_interval=5.0,
        store_market_data=False,
    )
    for name, value in overrides.items():
        setattr(config, name, value)
    feed = SimulatedFeed(list(config.symbols), speed=10, seed=7)
    return TradingRuntime(config, feed, channel_layer=channel_layer)


@contextlib.asynccontextmanager
async def running(account: Account, **overrides):
    """Run a TradingRuntime on the simulated market in the background."""
    runtime = runtime_for(account, **overrides)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    await until(lambda: runtime.runner is not None and runtime.summary.events > 20, "engine start")
    try:
        yield runtime
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def until(predicate, what: str, timeout: float = 30) -> None:
    """Poll an (a)sync predicate until it holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def has_status(order: Order, expected: str) -> bool:
    """Return True once the stored status of ``order`` is ``expected``."""
    return await db(lambda: Order.objects.get(pk=order.pk).status)() == expected


async def submit(account: Account, side: str, quantity: str, **kwargs) -> Order:
    """Submit an order through the service the API uses."""
    return await db(order_submit)(
        account=account, symbol="BTC-USD", side=side, quantity=Decimal(quantity), **kwargs
    )


async def has_state(account: Account, expected: str) -> bool:
    """Return True once the account's stored trading state is ``expected``."""
    return await db(lambda: TradingState.objects.get(account=account).state)() == expected
