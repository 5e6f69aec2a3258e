"""Risk inside a running engine: live limit edits, daily-loss reducing, drawdown kill switch."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monitoring.models import AuditLog
from risk.models import RiskEvent, RiskLimit
from risk.services import risk_limit_update
from tests.runtime_harness import (
    db,
    has_state,
    has_status,
    running,
    submit,
    until,
)
from trading.models import Order

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


async def test_limit_tightened_in_the_database_rejects_the_next_order(paper):
    async with running(paper) as runtime:
        first = await submit(paper, "buy", "0.01")
        await until(lambda: has_status(first, "filled"), "first order filled")
        await db(RiskLimit.objects.create)(
            scope="global", kind="max_order_notional", value=Decimal("100"), action="reject"
        )
        await until(
            lambda: any(s.kind == "max_order_notional" for s in runtime.risk.limits), "limit reload"
        )
        second = await submit(paper, "buy", "0.01")
        await until(lambda: has_status(second, "rejected"), "second order rejected")
    stored = await db(Order.objects.get)(pk=second.pk)
    assert "max_order_notional" in stored.reject_reason
    assert await db(RiskEvent.objects.filter(kind="max_order_notional").exists)()


async def test_daily_loss_breach_moves_the_account_to_reducing(paper):
    limit = await db(RiskLimit.objects.get)(account=paper, kind="max_daily_loss_pct")
    await db(risk_limit_update)(limit=limit, actor="test", value=Decimal("0.00001"))
    async with running(paper):
        entry = await submit(paper, "buy", "0.2")
        await until(lambda: has_status(entry, "filled"), "entry filled")
        exit_ = await submit(paper, "sell", "0.2")
        await until(lambda: has_status(exit_, "filled"), "exit filled (risk-reducing passes)")
        await until(lambda: has_state(paper, "reducing"), "reducing state")
        blocked = await submit(paper, "buy", "0.01")
        await until(lambda: has_status(blocked, "rejected"), "risk-increasing order rejected")
    assert await db(
        RiskEvent.objects.filter(kind="max_daily_loss_pct", severity="critical").exists
    )()


async def test_drawdown_breach_fires_the_kill_switch(paper):
    await db(RiskLimit.objects.filter(account=paper, kind="max_drawdown_pct").update)(
        value=Decimal("0.00001")
    )
    async with running(paper):
        resting = await submit(paper, "buy", "0.01", type="limit", price=Decimal("48000"))
        await until(lambda: has_status(resting, "open"), "resting order open")
        entry = await submit(paper, "buy", "0.2")
        await until(lambda: has_status(entry, "filled"), "entry filled")
        await until(lambda: has_state(paper, "halted"), "halted state")
        await until(lambda: has_status(resting, "cancelled"), "open orders cancelled")
    assert await db(RiskEvent.objects.filter(kind="max_drawdown_pct").exists)()
    audit = await db(
        lambda: list(
            AuditLog.objects.filter(action="trading_state.set").values_list("actor_repr", "after")
        )
    )()
    assert ("risk-engine", "halted") in [(a, after["state"]) for a, after in audit]


async def test_engine_enforces_stops_the_strategy_never_set(paper):
    from risk.engine.enforcer import STOP_STRATEGY, stop_rules

    rules = stop_rules(stop_loss=Decimal("0.0002"), trailing=Decimal("0.0002"))
    async with running(paper, stop_rules=rules):
        entry = await submit(paper, "buy", "0.05")
        await until(lambda: has_status(entry, "filled"), "entry filled")
        await until(lambda: _stop_exit_filled(STOP_STRATEGY), "stop exit filled", timeout=60)
    exit_order = await db(Order.objects.get)(strategy=STOP_STRATEGY)
    assert exit_order.reduce_only and exit_order.side == "sell"
    assert exit_order.signal in {"fixed_stop", "trailing_stop"}
    position = await db(lambda: paper.positions.get(symbol__name="BTC-USD").quantity)()
    assert position == 0


async def _stop_exit_filled(strategy: str) -> bool:
    return await db(Order.objects.filter(strategy=strategy, status="filled").exists)()
