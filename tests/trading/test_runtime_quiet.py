"""Halted means quiet; nothing trades after the stop; a dead feed leaves the account reducing."""

from __future__ import annotations

import asyncio
import socket
from decimal import Decimal

import pytest

from marketdata.adapters.base import ExponentialBackoff, FeedUnavailable
from marketdata.adapters.coinbase import CoinbaseFeed
from risk.models import RiskEvent, TradingState
from risk.services import trading_state_set
from tests.runtime_harness import db, running, until
from tests.trading.books import assert_books_agree
from trading.engine.hooks import TradingMode
from trading.engine.strategies import STRATEGIES, register
from trading.engine.strategy import Strategy
from trading.models import Order
from trading.runtime import RuntimeConfig, TradingRuntime

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


if "test_every_bar" not in STRATEGIES:

    @register("test_every_bar")
    class EveryBar(Strategy):
        """Buys a little on every bar it sees, and once more when it is stopped."""

        def on_bar(self, bar, ctx) -> None:
            ctx.buy(bar.symbol, Decimal("0.001"))

        def on_stop(self, ctx) -> None:
            ctx.buy("BTC-USD", Decimal("0.001"))


async def _written_since_now(runtime) -> None:
    """Wait until two batches (snapshots, at least) cut after this moment are committed."""
    batches = runtime.summary.batches
    await until(lambda: runtime.summary.batches >= batches + 2, "two more batches stored")


async def _orders(account) -> int:
    return await db(Order.objects.filter(account=account).count)()


async def test_a_halted_account_stores_no_order_its_strategy_keeps_asking_for(paper):
    async with running(paper, strategy="test_every_bar") as runtime:
        await until(lambda: _orders(paper), "the strategy trades")
        await db(trading_state_set)(account=paper, state="halted", reason="test", actor=None)
        await until(lambda: runtime.oms.mode(paper.name) is TradingMode.HALTED, "halt applied")
        await until(lambda: runtime.gate.suppressed >= 1, "an intent held back")
        await _written_since_now(runtime)  # orders made before the halt are stored by now
        stored = await _orders(paper)
        held = runtime.gate.suppressed
        await until(lambda: runtime.gate.suppressed >= held + 5, "five more bars asking")
        await _written_since_now(runtime)
        assert await _orders(paper) == stored, "a halted account stored new orders"
    events = await db(
        lambda: list(RiskEvent.objects.filter(message__contains="held back").values_list(
            "message", flat=True))
    )()
    assert len(events) == 1, events
    assert runtime.summary.suppressed_intents >= 6


async def test_reducing_lets_only_risk_reducing_strategy_orders_through(paper):
    async with running(paper, strategy="test_every_bar") as runtime:
        await until(lambda: _orders(paper), "the strategy trades")
        await db(trading_state_set)(account=paper, state="reducing", reason="test", actor=None)
        await until(lambda: runtime.oms.mode(paper.name) is TradingMode.REDUCING, "applied")
        await until(lambda: runtime.gate.suppressed >= 3, "buys held back")
        await _written_since_now(runtime)
        stored = await _orders(paper)
        await until(lambda: runtime.gate.suppressed >= 6, "more buys held back")
        await _written_since_now(runtime)
        assert await _orders(paper) == stored


async def test_nothing_trades_after_the_stop_signal(paper):
    async with running(paper, strategy="test_every_bar") as runtime:
        await until(lambda: _orders(paper), "the strategy trades")
    last_trade = runtime.session.now
    latest = await db(
        lambda: Order.objects.filter(account=paper).order_by("-created_at").first().created_at
    )()
    # A bar cut short by the stop would be closed at its end, after the last trade, and traded.
    assert latest <= last_trade, (latest, last_trade)
    assert runtime.gate.after_stop >= 1  # on_stop asked, and was not sent


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_feed_that_never_connects_stops_the_engine_and_leaves_the_account_reducing(paper):
    feed = CoinbaseFeed(
        ["BTC-USD"],
        url=f"ws://127.0.0.1:{_closed_port()}",
        backoff=ExponentialBackoff(initial=0.01, maximum=0.02),
        open_timeout=2,
    )
    config = RuntimeConfig(account=paper.name, symbols=["BTC-USD"], feed="coinbase",
                           store_market_data=False, heartbeat_interval=5)
    runtime = TradingRuntime(config, feed)
    with pytest.raises(FeedUnavailable):
        await asyncio.wait_for(runtime.run(asyncio.Event()), 60)
    state = await db(TradingState.objects.get)(account=paper)
    assert state.state == "reducing"
    assert await db(RiskEvent.objects.filter(kind="feed", account=paper).exists)()


async def test_a_dead_market_data_writer_stops_the_engine_loudly_after_storing_its_trades(paper):
    from marketdata.storage import WriterFailed

    def broken(result) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(WriterFailed, match="disk on fire"):
        async with running(paper, strategy="test_every_bar", store_market_data=True) as runtime:
            await until(lambda: _orders(paper), "the strategy trades")
            runtime.md_writer.on_commit = broken
            await until(lambda: runtime.md_writer.task.done(), "the writer dies", timeout=30)
            await until(lambda: runtime.gate.closed, "the engine stops by itself", timeout=30)
    assert await _orders(paper) > 0
    await db(assert_books_agree)(paper)
