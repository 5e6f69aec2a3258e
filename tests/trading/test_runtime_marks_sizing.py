"""Stored marks follow the engine at the snapshot interval; entries follow the sizing policy."""

from __future__ import annotations

from decimal import Decimal

import pytest

from risk.models import SizingPolicy
from tests.runtime_harness import db, running, until
from trading.engine.strategies import STRATEGIES, register
from trading.engine.strategy import Strategy
from trading.models import Order, Position

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]

if "test_buy_once" not in STRATEGIES:

    @register("test_buy_once")
    class BuyOnce(Strategy):
        """Buys 0.01 BTC on its first bar, then holds."""

        def on_bar(self, bar, ctx) -> None:
            if not ctx.expected_position(bar.symbol):
                ctx.buy(bar.symbol, Decimal("0.01"))


if "test_sized_entry" not in STRATEGIES:

    @register("test_sized_entry")
    class SizedEntry(Strategy):
        """Goes long what ``ctx.size_for`` gives for a quarter of equity, once."""

        def on_bar(self, bar, ctx) -> None:
            if not ctx.expected_position(bar.symbol):
                size = ctx.size_for(bar.symbol, Decimal("0.25"), Decimal("0.00000001"))
                ctx.target_position(bar.symbol, size)


def stored_position():
    return Position.objects.filter(symbol__name="BTC-USD").values_list(
        "quantity", "average_price", "mark_price", "unrealized_pnl").first()


async def test_stored_marks_and_unrealised_pnl_follow_the_engine_between_fills(paper):
    async with running(paper, strategy="test_buy_once", snapshot_interval=0.2) as runtime:
        await until(lambda: db(stored_position)(), "the position is stored")
        qty, avg, first_mark, _ = await db(stored_position)()
        fills = runtime.summary.fills

        async def moved() -> bool:
            row = await db(stored_position)()
            return row[2] != first_mark

        await until(moved, "the stored mark to move without a new fill")
        qty, avg, mark, pnl = await db(stored_position)()
        assert runtime.summary.fills == fills, "a new fill moved it, not the snapshot"
        assert qty == Decimal("0.01")
        assert pnl == (mark - avg) * qty
        engine = runtime.oms.portfolio(paper.name).position("BTC-USD")
        assert engine.quantity == qty


async def test_entries_are_sized_by_the_accounts_policy_from_the_admin(paper):
    await db(SizingPolicy.objects.create)(
        account=paper, strategy="test_sized_entry", method="fixed_fraction",
        fraction=Decimal("0.02"),
    )
    async with running(paper, strategy="test_sized_entry") as runtime:
        await until(lambda: db(Order.objects.filter(status="filled").exists)(), "an entry fills")
        order = await db(Order.objects.filter(status="filled").earliest)("created_at")
    # 2 % of the 100,000 starting equity, not the quarter the strategy asked for.
    assert float(order.quantity * order.average_fill_price) == pytest.approx(2000, rel=0.01)
    assert runtime.runner.sizer.policy("test_sized_entry").fraction == Decimal("0.02")
