"""TWAP parents from ``order_submit``: stored, worked by runtrader, resumed after a restart."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monitoring.models import AuditLog
from tests.runtime_harness import db, has_status, running, submit, until
from trading.engine.algo_book import algo_child_id
from trading.engine.errors import AlgoConfigError
from trading.models import Fill, Order
from trading.services import order_submit

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("close_thread_connections")]


def _children(parent: Order) -> list[Order]:
    ids = [algo_child_id(parent.client_order_id.hex, n) for n in range(20)]
    return list(Order.objects.filter(client_order_id__in=ids).order_by("created_at"))


def _filled(orders: list[Order]) -> Decimal:
    return sum((f.quantity for f in Fill.objects.filter(order__in=orders)), Decimal(0))


async def test_a_stored_twap_parent_is_worked_in_children_by_the_engine(paper):
    async with running(paper):
        parent = await submit(paper, "buy", "0.06", algo="twap", duration=6, slices=3)
        await until(lambda: has_status(parent, "filled"), "parent filled", timeout=60)
    children = await db(_children)(parent)
    assert [c.quantity for c in children] == [Decimal("0.02")] * 3
    assert all(c.status == "filled" for c in children)
    assert await db(_filled)(children) == Decimal("0.06")
    stored = await db(Order.objects.get)(pk=parent.pk)
    assert stored.filled_quantity == Decimal("0.06") and stored.average_fill_price > 0
    assert stored.metadata["algo"]["kind"] == "twap" and "algo_started" in stored.metadata
    entry = await db(AuditLog.objects.get)(action="order.submit")
    assert entry.after["algo"]["slices"] == 3


async def test_a_parent_resumes_after_a_restart_without_sending_a_child_twice(paper):
    async with running(paper):
        parent = await submit(paper, "buy", "0.1", algo="twap", duration=40, slices=10)
        await until(lambda: _has_filled_children(parent, 2), "two children filled", timeout=60)
    before = await db(_children)(parent)
    assert 2 <= len(before) < 10 and await db(_filled)(before) < Decimal("0.1")
    assert await has_status(parent, "open")
    async with running(paper):  # a new engine: reloads the parent and its children
        await until(lambda: has_status(parent, "filled"), "parent filled", timeout=60)
    after = await db(_children)(parent)
    ids = [c.client_order_id for c in after]
    assert len(ids) == len(set(ids)) and ids[: len(before)] == [c.client_order_id for c in before]
    assert await db(_filled)(after) == Decimal("0.1")  # exactly the parent: nothing sent twice


async def _has_filled_children(parent: Order, count: int) -> bool:
    children = await db(_children)(parent)
    return sum(c.status == "filled" for c in children) >= count


def test_bad_algo_parents_are_refused_before_storage(paper):
    with pytest.raises(AlgoConfigError, match="market order"):
        order_submit(account=paper, symbol="BTC-USD", side="buy", quantity=Decimal("1"),
                     type="limit", price=Decimal("1"), algo="twap", duration=60)  # fmt: skip
    with pytest.raises(AlgoConfigError, match="needs a duration"):
        order_submit(account=paper, symbol="BTC-USD", side="buy", quantity=Decimal("1"),
                     algo="twap")  # fmt: skip
    assert not Order.objects.exists()
