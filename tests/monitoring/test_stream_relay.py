"""Backtest progress written by another process reaches the stream on the embedded layer.

A run executes in a task worker (another process); the in-memory channel layer cannot carry its
messages, so the connection relays the run's stored progress. Here the "other process" is a
plain database write, exactly what a worker's progress mark does."""

from __future__ import annotations

import datetime as dt

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer

from backtesting.models import BacktestRun
from tests.factories import SymbolFactory
from tests.monitoring.stream_helpers import StreamClient
from tests.monitoring.test_stream import T0, token_of, user_with

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


@database_sync_to_async
def pending_run() -> BacktestRun:
    from backtesting.services import Costs, backtest_run_create

    SymbolFactory(name="BTC-USD")
    return backtest_run_create(
        strategy="sma_cross", params={}, symbols=["BTC-USD"], timeframe="1m",
        start=T0, end=T0 + dt.timedelta(days=1), costs=Costs(), data_source="sim",
    )  # fmt: skip


@database_sync_to_async
def store(run: BacktestRun, status: str, progress: float) -> None:
    BacktestRun.objects.filter(pk=run.pk).update(status=status, progress=progress)


async def test_stored_progress_is_relayed_on_the_in_memory_layer():
    if not isinstance(get_channel_layer(), InMemoryChannelLayer):
        pytest.skip("Redis carries the worker's own progress messages: no relay runs")
    run = await pending_run()
    client = await StreamClient(f"token={await token_of(await user_with('relay'))}").open()
    await client.subscribe(f"backtests.{run.pk}")
    assert (await client.receive())["data"]["status"] == "pending"
    await store(run, "running", 0.42)
    update = await client.receive(timeout=10)
    assert (update["type"], update["seq"]) == ("progress", 2)
    assert (update["data"]["done"], update["data"]["total"], update["data"]["status"]) == (
        42, 100, "running"
    )
    await store(run, "completed", 1.0)
    last = await client.receive(timeout=10)
    assert (last["data"]["done"], last["data"]["status"], last["seq"]) == (100, "completed", 3)
    await store(run, "completed", 1.0)  # finished: the relay has stopped, nothing more comes
    assert await client.nothing_more()
    await client.close()
