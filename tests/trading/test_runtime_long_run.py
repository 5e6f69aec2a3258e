"""A long session stays responsive and flat: a feed with a backlog never starves the loop, and
what the engine remembers per order is forgotten once the order's final state is stored."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from marketdata.feeds import SimulatedFeed
from tests.runtime_harness import db, running, until
from trading.engine.strategies import STRATEGIES, register
from trading.engine.strategy import Strategy
from trading.models import Order
from trading.runtime import CONSUME_YIELD_EVERY, RuntimeConfig, TradingRuntime

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]

BACKLOG = 6_000  # events ready at once, as a simulated market behind its pace hands them over

if "test_long_run_buyer" not in STRATEGIES:

    @register("test_long_run_buyer")
    class EveryBarBuyer(Strategy):
        """Buys a little on every bar (market orders: each fills and is final at once)."""

        def on_bar(self, bar, ctx) -> None:
            ctx.buy(bar.symbol, Decimal("0.0001"))


class BacklogFeed(SimulatedFeed):
    """The simulated market's events handed over without ever waiting (a feed behind)."""

    async def events(self):
        for event in self.market.events(BACKLOG // 4):
            if self._closed:
                return
            yield event


async def test_a_feed_with_a_backlog_leaves_the_loop_to_the_other_tasks(paper):
    config = RuntimeConfig(account=paper.name, symbols=["BTC-USD"], timeframe="1s",
                           store_market_data=True, heartbeat_interval=5.0)
    runtime = TradingRuntime(config, BacklogFeed(["BTC-USD"], seed=3))
    seen: list[int] = []  # the engine's event count each time another task got the loop

    async def probe() -> None:
        while True:
            seen.append(runtime.summary.events)
            await asyncio.sleep(0)

    prober = asyncio.create_task(probe())
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    await until(lambda: runtime.summary.events >= BACKLOG // 2, "half the backlog consumed")
    stop.set()
    await asyncio.wait_for(task, 60)
    prober.cancel()
    gaps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
    # Before the fix the whole backlog went by in one turn of the loop (gap ~ BACKLOG).
    assert max(gaps) <= CONSUME_YIELD_EVERY, max(gaps)
    assert runtime.summary.market_data["stored"] > 0


async def test_finished_orders_are_forgotten_once_stored(paper):
    async with running(paper, strategy="test_long_run_buyer") as runtime:
        await until(
            lambda: db(Order.objects.filter(account=paper, status="filled").count)(),
            "orders filled",
        )

        async def enough() -> bool:
            return await db(Order.objects.filter(account=paper, status="filled").count)() >= 25

        await until(enough, "25 orders filled and stored")
        batches = runtime.summary.batches
        await until(lambda: runtime.summary.batches >= batches + 2, "two more batches stored")

        # The recorder's ids and the store's row-id cache hold working and unstored orders only
        # (before: every order of the session, growing for as long as the engine ran, so this
        # never held once 25 were stored). Polled: how many orders wait for the next batch at one
        # instant depends on the machine's load, not on the code.
        def forgotten() -> bool:
            working = len(runtime.oms.open_orders(paper.name))
            return (
                len(runtime.recorder.seen) <= working + 3
                and len(runtime.store._order_pks) <= working + 3
            )

        await until(forgotten, "finished, stored orders to be forgotten")


def test_broadcasts_send_account_messages_first_and_conflate_market_states():
    from trading.runtime import BroadcastQueue

    queue = BroadcastQueue()
    for n in range(30_000):  # a feed far faster than the channel layer
        assert queue.put((f"market.S{n % 3}", "quote", {"n": n}, "t"))
        assert queue.put((f"market.S{n % 3}", "bar", {"n": n, "closed": False}, "t"))
    trades = [queue.put(("market.S0", "trade", {"n": n}, "t")) for n in range(12_000)]
    assert trades.count(False) == 2_000  # trades wait in a bounded queue; the rest is counted
    assert queue.put(("orders", "order", {"id": 1}, "t"))
    assert queue.put(("fills", "fill", {"id": 1}, "t"))
    assert queue.conflated == 60_000 - 6  # one state per channel and kind is left to send
    assert len(queue) == 6 + 10_000 + 2

    async def drain() -> list[tuple]:
        queue.close()
        out = []
        while (item := await queue.get()) is not None:
            out.append(item)
        return out

    sent = asyncio.run(drain())
    assert [i[0] for i in sent[:2]] == ["orders", "fills"]  # before any market data
    latest = {(c, k): d["n"] for c, k, d, _ in sent if k in {"quote", "bar"}}
    assert latest[("market.S0", "quote")] == 29_997 and latest[("market.S2", "bar")] == 29_999
    assert [d["n"] for c, k, d, _ in sent if k == "trade"] == list(range(10_000))
