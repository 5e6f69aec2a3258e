"""Risk inside a running engine: live limit edits, daily-loss reducing, drawdown kill switch."""

from __future__ import annotations

import asyncio
import contextlib
import os
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connections

from marketdata.feeds import SimulatedFeed
from monitoring.models import AuditLog
from risk.models import RiskEvent, RiskLimit, TradingState
from risk.services import risk_limit_update
from trading.models import Account, Order
from trading.runtime import RuntimeConfig, TradingRuntime
from trading.services import order_submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def account(transactional_db):
    """The bootstrapped paper account."""
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    return Account.objects.get(name="paper")


@pytest.fixture(autouse=True)
async def close_thread_connections():
    """Close the connection sync_to_async's worker thread opened, so teardown can drop the DB."""
    yield
    await sync_to_async(connections.close_all)()


@contextlib.asynccontextmanager
async def running(account: Account):
    """Run a TradingRuntime on the simulated market in the background."""
    config = RuntimeConfig(account=account.name, symbols=["BTC-USD"], timeframe="1s",
                           control_interval=0.1, flush_interval=0.05, snapshot_interval=1.0,
                           heartbeat_interval=5.0, store_market_data=False)
    runtime = TradingRuntime(config, SimulatedFeed(["BTC-USD"], speed=10, seed=7))
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


db = sync_to_async


async def has_status(order: Order, expected: str) -> bool:
    """Return True once the stored status of ``order`` is ``expected``."""
    return await db(lambda: Order.objects.get(pk=order.pk).status)() == expected


async def submit(account: Account, side: str, quantity: str, **kwargs) -> Order:
    """Submit an order through the service the API uses."""
    return await db(order_submit)(account=account, symbol="BTC-USD", side=side,
                                  quantity=Decimal(quantity), **kwargs)


async def test_limit_tightened_in_the_database_rejects_the_next_order(account):
    async with running(account) as runtime:
        first = await submit(account, "buy", "0.01")
        await until(lambda: has_status(first, "filled"), "first order filled")
        await db(RiskLimit.objects.create)(scope="global", kind="max_order_notional",
                                           value=Decimal("100"), action="reject")
        await until(lambda: any(s.kind == "max_order_notional" for s in runtime.risk.limits),
                    "limit reload")
        second = await submit(account, "buy", "0.01")
        await until(lambda: has_status(second, "rejected"), "second order rejected")
    stored = await db(Order.objects.get)(pk=second.pk)
    assert "max_order_notional" in stored.reject_reason
    assert await db(RiskEvent.objects.filter(kind="max_order_notional").exists)()


async def test_daily_loss_breach_moves_the_account_to_reducing(account):
    limit = await db(RiskLimit.objects.get)(account=account, kind="max_daily_loss_pct")
    await db(risk_limit_update)(limit=limit, actor="test", value=Decimal("0.00001"))
    async with running(account):
        entry = await submit(account, "buy", "0.2")
        await until(lambda: has_status(entry, "filled"), "entry filled")
        exit_ = await submit(account, "sell", "0.2")
        await until(lambda: has_status(exit_, "filled"), "exit filled (risk-reducing passes)")
        await until(lambda: has_state(account, "reducing"), "reducing state")
        blocked = await submit(account, "buy", "0.01")
        await until(lambda: has_status(blocked, "rejected"), "risk-increasing order rejected")
    assert await db(RiskEvent.objects.filter(kind="max_daily_loss_pct",
                                             severity="critical").exists)()


async def test_drawdown_breach_fires_the_kill_switch(account):
    await db(RiskLimit.objects.filter(account=account, kind="max_drawdown_pct").update)(
        value=Decimal("0.00001"))
    async with running(account):
        resting = await submit(account, "buy", "0.01", type="limit", price=Decimal("48000"))
        await until(lambda: has_status(resting, "open"), "resting order open")
        entry = await submit(account, "buy", "0.2")
        await until(lambda: has_status(entry, "filled"), "entry filled")
        await until(lambda: has_state(account, "halted"), "halted state")
        await until(lambda: has_status(resting, "cancelled"), "open orders cancelled")
    assert await db(RiskEvent.objects.filter(kind="max_drawdown_pct").exists)()
    audit = await db(lambda: list(AuditLog.objects.filter(action="trading_state.set")
                                  .values_list("actor_repr", "after")))()
    assert ("risk-engine", "halted") in [(a, after["state"]) for a, after in audit]


async def has_state(account: Account, expected: str) -> bool:
    """Return True once the account's stored trading state is ``expected``."""
    return await db(lambda: TradingState.objects.get(account=account).state)() == expected
