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


@pytest.mark.django_db(transaction=True)
def test_sigkill_of_the_run_command_ends_its_task_worker(subprocess_env, paper):
    """`make run` killed by SIGKILL left its qcluster running as an orphan (one per crash)."""
    from pathlib import Path

    from tests.polling import wait_for
    from tests.trading.test_runtrader_worker import run_and_queue, worker_env

    proc, _ = run_and_queue(worker_env(subprocess_env))
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        wait_for(lambda: children.read_text().split(), 60, "the task worker")
        worker = int(children.read_text().split()[0])
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    wait_for(lambda: not Path(f"/proc/{worker}").exists()
             or Path(f"/proc/{worker}/stat").read_text().split()[2] == "Z", 60, "worker ended")
