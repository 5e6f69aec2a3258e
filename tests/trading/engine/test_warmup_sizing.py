"""Warm-up never trades and makes the first live bar a decision; entries follow the sizer."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from marketdata.engine.events import Bar
from risk.engine.sizing import PolicySizer, SizingMethod, SizingPolicy
from tests.trading.engine.helpers import SYM, T0
from trading.engine.oms import OrderManager
from trading.engine.orders import Order, SequentialIds
from trading.engine.portfolio import Portfolio
from trading.engine.runner import StrategyRunner
from trading.engine.strategies import DEFAULT_FRACTION, STRATEGIES, create_strategy
from trading.engine.venue import PaperVenue

D = Decimal


def bars(closes: list[float], start=T0) -> list[Bar]:
    """Return 1m bars closing at ``closes`` from ``start``."""
    return [
        Bar(SYM, "1m", start + timedelta(minutes=i), c, c, c, c, 10.0)
        for i, c in enumerate(closes)
    ]


class Orders:
    """OMS listener: every order the engine accepted, rejected or filled, by id."""

    def __init__(self) -> None:
        self.seen: dict[str, Order] = {}

    def on_order(self, order: Order) -> None:
        self.seen[order.client_order_id] = order

    def on_fill(self, fill: object) -> None:
        pass


def engine(strategy, cash: str = "100000") -> tuple[StrategyRunner, Orders]:
    orders = Orders()
    oms = OrderManager(
        PaperVenue(), portfolios=[Portfolio("acct", D(cash), ts=T0)], listeners=[orders]
    )
    runner = StrategyRunner(oms, id_factory=SequentialIds())
    runner.add(strategy, "acct")
    runner.start(T0)
    return runner, orders


# A rising market: fast SMA above the slow one on every bar once both exist.
RISING = [30000.0 + 10 * i for i in range(40)]


def test_warm_up_bars_never_become_orders_and_the_first_live_bar_decides() -> None:
    strategy = create_strategy("sma_cross", fast=3, slow=8)
    runner, orders = engine(strategy)
    assert strategy.warmup_bars == 9 and runner.warmup_bars() == 9
    history = bars(RISING[:9])
    live_start = history[-1].ts + timedelta(minutes=1)
    assert runner.warm_up(history, live_start) == 9
    assert orders.seen == {}  # the strategy wanted to go long during warm-up: nothing was sent
    assert runner.history.last(SYM, 100)[-1] == RISING[8]
    runner.on_bar(bars(RISING[9:10], live_start)[0])  # the first closed live bar
    (order,) = orders.seen.values()
    assert order.side.value == "buy" and order.created_ts == live_start + timedelta(minutes=1)


def test_without_warm_up_the_first_decision_waits_for_the_slow_average() -> None:
    runner, orders = engine(create_strategy("sma_cross", fast=3, slow=8))
    for bar in bars(RISING[:7]):
        runner.on_bar(bar)
    assert orders.seen == {}  # seven minutes in, still nothing: warm-up is what cures this
    runner.on_bar(bars(RISING[7:8], T0 + timedelta(minutes=7))[0])
    assert len(orders.seen) == 1


def test_default_fraction_suits_several_symbols() -> None:
    for name in ("sma_cross", "rsi_reversion", "bollinger_breakout", "model_signal"):
        assert STRATEGIES[name].default_params["fraction"] == DEFAULT_FRACTION <= 0.1


def test_entries_are_sized_by_the_account_policy_when_one_is_attached() -> None:
    strategy = create_strategy("sma_cross", fast=3, slow=8)  # asks for 10 % of equity
    runner, orders = engine(strategy)
    runner.sizer = PolicySizer(
        SizingPolicy(),
        {"sma_cross": SizingPolicy(SizingMethod.FIXED_FRACTION, fraction=D("0.03"))},
    )
    runner.warm_up(bars(RISING[:9]), T0 + timedelta(minutes=9))
    runner.on_bar(bars(RISING[9:10], T0 + timedelta(minutes=9))[0])
    submitted = list(orders.seen.values())
    assert len(submitted) == 1
    # 3 % of 100,000 at the bar's close, floored to the lot.
    expected = (D("3000") / D(str(RISING[9]))).quantize(D("0.00000001"), rounding="ROUND_FLOOR")
    assert submitted[0].quantity == expected
