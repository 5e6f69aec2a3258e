"""The runtime's broadcast queue builds a market payload only when it is sent.

A loaded engine publishes more market data than it sends (quotes and books conflate, trades past
the backlog are dropped); building every payload anyway was a sixth of a soak's engine CPU.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from tests.runtime_harness import runtime_for
from trading import runtime as runtime_module
from trading.runtime import BroadcastQueue


class Builder:
    """A payload builder that counts its calls (what ``_publish_market`` queues)."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> dict:
        self.calls += 1
        return {"symbol": "BTC-USD", "n": self.n}


async def test_payloads_are_built_only_for_the_messages_sent():
    queue = BroadcastQueue()
    books = [Builder(n) for n in range(5)]
    stamp = dt.datetime(2026, 1, 5, 12, 0, 1, 250000, tzinfo=dt.UTC)
    for builder in books:  # each replaces the one waiting before it
        assert queue.put(("market.BTC-USD", "book", builder, stamp.timestamp()))
    assert queue.put(("orders", "order", {"client_order_id": "c1"}, stamp.timestamp()))
    queue.close()
    items = await queue.get_many(10)
    assert items == [
        ("orders", "order", {"client_order_id": "c1"}, stamp.isoformat()),
        ("market.BTC-USD", "book", {"symbol": "BTC-USD", "n": 4}, stamp.isoformat()),
    ]
    assert [b.calls for b in books] == [0, 0, 0, 0, 1]
    assert queue.conflated == 4


async def test_trades_dropped_past_the_backlog_are_never_built(monkeypatch):
    monkeypatch.setattr(BroadcastQueue, "MARKET_BACKLOG", 3)
    queue = BroadcastQueue()
    trades = [Builder(n) for n in range(6)]
    kept = [queue.put(("market.BTC-USD", "trade", t, 0.0)) for t in trades]
    assert kept == [True, True, True, False, False, False]
    queue.close()
    assert [item[2]["n"] for item in await queue.get_many(10)] == [0, 1, 2]
    assert [t.calls for t in trades] == [1, 1, 1, 0, 0, 0]


async def test_a_payload_that_fails_to_build_is_skipped_and_logged(caplog):
    def broken() -> dict:
        raise ValueError("malformed book")

    queue = BroadcastQueue()
    queue.put(("market.BTC-USD", "book", broken, 0.0))
    queue.put(("market.ETH-USD", "quote", Builder(1), 0.0))
    queue.close()
    with caplog.at_level(logging.ERROR, logger="trading.runtime"):
        items = await queue.get_many(10)
    assert [(channel, kind) for channel, kind, _, _ in items] == [("market.ETH-USD", "quote")]
    assert "could not build the book payload of market.BTC-USD" in caplog.text
    assert await queue.get_many(10) is None


@pytest.mark.usefixtures("close_thread_connections")
async def test_a_broadcaster_that_fails_stops_the_engine_loudly(paper, monkeypatch, caplog):
    """A broadcaster that raised ended unwatched: the engine traded on, clients got nothing."""
    from channels.layers import InMemoryChannelLayer

    async def broken(layer, items, relay=None):
        raise RuntimeError("broadcast exploded")

    monkeypatch.setattr(runtime_module, "broadcast", broken)
    caplog.set_level(logging.CRITICAL, logger="trading.runtime")
    runtime = runtime_for(paper, channel_layer=InMemoryChannelLayer(), duration=60)
    with pytest.raises(RuntimeError, match="broadcast exploded"):
        await asyncio.wait_for(runtime.run(asyncio.Event()), 60)
    assert "background task failed; stopping" in caplog.text
