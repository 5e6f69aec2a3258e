"""A long-running writer keeps a window of commit latencies, not one per event ever written."""

from __future__ import annotations

import asyncio

import pytest

from marketdata.models import TradeTick
from marketdata.storage import AsyncBatchWriter
from tests.factories import SymbolFactory
from tests.marketdata.test_storage import trades


@pytest.mark.django_db(transaction=True)
def test_a_latency_window_keeps_the_latest_latencies_only():
    SymbolFactory(name="BTC-USD")

    async def scenario():
        writer = AsyncBatchWriter(batch_size=100, flush_interval=0.01, latency_window=50).start()
        for k in range(6):
            await writer.put_many(trades(100, start=100 * k), [writer.clock()] * 100)
        return await asyncio.wait_for(writer.close(), 30)

    stats = asyncio.run(scenario())
    assert TradeTick.objects.count() == stats.written == 600
    # Before: 600 entries, and one more for every event for as long as runtrader ran.
    assert len(stats.latencies) == 50 and all(x >= 0 for x in stats.latencies)
