"""A database that refuses writes, or whose connections are cut, loses and invents nothing.

The engine runs in the test's loop on the simulated market against the real test database. An
outage is made by the database itself: a trigger that refuses every update of the account row
(each trading batch writes cash), or, on PostgreSQL, by terminating the engine's backends.
"""

from __future__ import annotations

import asyncio

import pytest
from django.db import connection
from django.test import Client

from risk.models import RiskEvent
from tests.dbfaults import refuse_updates
from tests.runtime_harness import db, running, until
from tests.trading.books import assert_books_agree
from trading.engine.hooks import TradingMode
from trading.models import Fill

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]

STRATEGY = {"strategy": "sma_cross", "params": {"fast": 2, "slow": 3}}


class FillCounter:
    """OMS listener counting every fill the engine made (stored or not)."""

    def __init__(self) -> None:
        self.fills = 0

    def on_order(self, order) -> None:
        """Ignore orders."""

    def on_fill(self, fill) -> None:
        """Count ``fill``."""
        self.fills += 1


def count_fills(runtime) -> FillCounter:
    """Count every fill from now on, starting from those the engine already made.

    Warmed-up strategies trade on the first live bar, before a test can attach a listener: the
    fills made by then are stored, waiting in the unsaved batch, or held by the recorder.
    """
    counter = FillCounter()
    unsaved = runtime._unsaved.fills if runtime._unsaved is not None else []
    counter.fills = runtime.summary.fills + len(unsaved) + len(runtime.recorder.fills)
    runtime.oms.add_listener(counter)
    return counter


def _block_account_writes(on: bool) -> None:
    refuse_updates("trading_account", on)


def _health() -> dict:
    return Client().get("/health").json()


async def _stored_fills(account) -> int:
    return await db(Fill.objects.filter(account=account).count)()


async def test_refused_writes_are_retried_reduce_risk_and_recover(paper):
    async with running(paper, **STRATEGY) as runtime:
        counter = count_fills(runtime)
        await until(lambda: counter.fills >= 2, "first fills", timeout=60)
        await until(lambda: _stored_fills(paper), "fills stored")
        await db(_block_account_writes)(True)
        try:
            await until(lambda: not runtime.persistence.ok, "the engine notices")
            assert runtime.oms.mode(paper.name) is TradingMode.REDUCING
            assert runtime._heartbeat_context("running")["status"] == "degraded"
            health = await db(_health)()
            assert health["status"] == "degraded"
            assert not health["components"][f"engine:{paper.name}"]["ok"]
            await asyncio.sleep(1.0)  # several failed retries while the engine goes on
            assert runtime.persistence.errors >= 2
        finally:
            await db(_block_account_writes)(False)
        await until(lambda: runtime.persistence.ok, "the engine recovers by itself", timeout=15)
        await until(
            lambda: runtime.oms.mode(paper.name) is TradingMode.ACTIVE, "mode handed back"
        )
        assert (await db(_health)())["status"] == "ok"
    assert await _stored_fills(paper) == counter.fills, "a fill made during the outage was lost"
    await db(assert_books_agree)(paper)
    messages = await db(
        lambda: list(RiskEvent.objects.filter(kind="persistence").values_list("message", flat=True))
    )()
    assert any("cannot persist" in m for m in messages)
    assert any("persisted again" in m for m in messages)


@pytest.fixture
def test_backend(paper) -> int:
    """The PostgreSQL backend of the test's own (main-thread) connection, spared by the cuts."""
    if connection.vendor != "postgresql":
        pytest.skip("cutting a backend connection is a PostgreSQL test")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate_engine_backends(spare: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s",
            [spare],
        )
        return cursor.fetchone()[0]


async def test_connections_cut_for_seconds_lose_no_fill_and_no_cash(paper, test_backend):
    async with running(paper, **STRATEGY) as runtime:
        counter = count_fills(runtime)
        await until(lambda: counter.fills >= 2, "first fills", timeout=60)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 4
        killed = 0
        while loop.time() < deadline:
            killed += await db(_terminate_engine_backends)(test_backend)
            await asyncio.sleep(0.05)
        assert killed > 0
        await until(lambda: runtime.persistence.ok, "the engine recovers by itself", timeout=15)
    assert runtime.persistence.errors > 0, "the cut never reached the engine's writes"
    assert await _stored_fills(paper) == counter.fills
    await db(assert_books_agree)(paper)
