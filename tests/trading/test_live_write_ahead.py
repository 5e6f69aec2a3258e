"""Live orders are stored before they are sent: an order the database refuses is not sent."""

from __future__ import annotations

import asyncio

import pytest

from tests.dbfaults import refuse_updates
from tests.runtime_harness import db, has_status, submit, until
from tests.trading.test_runtime_live import live_account, live_engine  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("close_thread_connections")]


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
