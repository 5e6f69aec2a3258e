"""An API order still pending when runtrader died is traded by the next engine, not dropped."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.runtime_harness import db, running, submit, until
from tests.trading.books import assert_books_agree
from trading.models import Fill, Order

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("close_thread_connections")]


async def _finished(order: Order) -> bool:
    return await db(lambda: Order.objects.get(pk=order.pk).status)() in {"filled", "cancelled"}


async def test_an_order_pending_across_a_restart_fills_once_the_market_is_back(paper):
    # Stored pending with no engine running: what the API leaves when runtrader is SIGKILLed
    # before it picks the order up. The next engine used to re-place it before its first
    # quote, so the paper venue cancelled it ("market: no more liquidity").
    order = await submit(paper, "buy", "0.01")
    async with running(paper):
        await until(lambda: _finished(order), "order finished")
    stored = await db(Order.objects.get)(pk=order.pk)
    assert (stored.status, stored.reject_reason) == ("filled", "")
    fills = await db(lambda: list(Fill.objects.filter(order=stored)))()
    assert sum(f.quantity for f in fills) == Decimal("0.01")
    await db(assert_books_agree)(paper)
