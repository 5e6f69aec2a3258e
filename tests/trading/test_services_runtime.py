"""Service functions used by the API and admin, acting on a running engine."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monitoring.models import AuditLog
from tests.runtime_harness import db, has_status, running, submit, until
from trading.engine.errors import OrderRejected
from trading.models import Order, Position
from trading.services import account_flatten, order_cancel, order_submit

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("close_thread_connections")]


async def test_submitted_order_is_picked_up_risk_checked_and_filled(paper):
    async with running(paper):
        order = await submit(paper, "buy", "0.05")
        await until(lambda: has_status(order, "filled"), "order filled")
    stored = await db(Order.objects.get)(pk=order.pk)
    fills = await db(lambda: list(stored.fills.values_list("quantity", flat=True)))()
    assert sum(fills) == Decimal("0.05")
    position = await db(Position.objects.get)(account=paper, symbol__name="BTC-USD")
    assert position.quantity == Decimal("0.05")
    assert await db(AuditLog.objects.filter(action="order.submit").exists)()


async def test_cancel_request_reaches_the_engine(paper):
    async with running(paper) as runtime:
        resting = await submit(paper, "buy", "0.01", type="limit", price=Decimal("48000"))
        await until(lambda: has_status(resting, "open"), "resting order open")
        await until(lambda: _heartbeat_seen(), "heartbeat")
        assert await db(order_cancel)(order=resting, actor="test")
        await until(lambda: has_status(resting, "cancelled"), "engine cancelled it")
        assert runtime.oms.get(resting.client_order_id.hex) is None


async def test_flatten_closes_positions_with_reduce_only_orders(paper):
    async with running(paper):
        entry = await submit(paper, "buy", "0.05")
        await until(lambda: has_status(entry, "filled"), "entry filled")
        closing = await db(account_flatten)(account=paper, actor="test")
        assert [o.reduce_only for o in closing] == [True]
        await until(lambda: has_status(closing[0], "filled"), "flatten filled")
    position = await db(Position.objects.get)(account=paper, symbol__name="BTC-USD")
    assert position.quantity == 0


def test_bad_orders_are_refused_before_storage(paper):
    with pytest.raises(OrderRejected):
        order_submit(account=paper, symbol="BTC-USD", side="buy", quantity=Decimal("1"),
                     type="limit")
    with pytest.raises(OrderRejected):
        order_submit(account=paper, symbol="BTC-USD", side="buy", quantity=Decimal("-1"))
    assert not Order.objects.exists()


async def _heartbeat_seen() -> bool:
    from monitoring.models import SystemEvent

    return await db(SystemEvent.objects.filter(component="runtrader", kind="heartbeat").exists)()
