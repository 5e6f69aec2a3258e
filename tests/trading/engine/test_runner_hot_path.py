"""The event style's per-bar path (``StrategyRunner``) keeps a strategy's own code fast and right.

CPython 3.11 specialises ``self.x`` reads and writes only while an instance's attributes are not
turned into a ``__dict__`` object: reading ``strategy.__dict__`` once (as ``StrategyRunner.add``
did) made every attribute access of the strategy's ``on_bar`` take the slow path for the whole run.
"""

from __future__ import annotations

from decimal import Decimal

from backtesting.engine.fills import BacktestVenue, FillConfig
from tests.backtesting.engine.helpers import bar, minute
from trading.engine.oms import OrderManager
from trading.engine.portfolio import Portfolio
from trading.engine.runner import StrategyRunner
from trading.engine.strategy import Strategy


class _Watched(Strategy):
    """Records every attribute name read on it."""

    def __init__(self, **params) -> None:
        self.read: list[str] = []
        super().__init__(**params)

    def __getattribute__(self, name: str):
        if name != "read":
            object.__getattribute__(self, "read").append(name)
        return object.__getattribute__(self, name)


class _Hears(Strategy):
    def on_fill(self, fill, ctx) -> None:
        pass


class _HearsByClassMethod(Strategy):
    @classmethod
    def on_fill(cls, fill, ctx) -> None:
        pass


def _runner() -> StrategyRunner:
    oms = OrderManager(BacktestVenue(FillConfig()), portfolios=[Portfolio("a", Decimal(1000))])
    return StrategyRunner(oms, history_size=10)


def test_adding_and_running_a_strategy_never_reads_its_instance_dict() -> None:
    runner = _runner()
    strategy = _Watched()
    runner.add(strategy, "a")
    runner.start(minute(0))
    for i in range(3):
        runner.on_bar(bar(i, 100, 101, 99, 100))
    assert "on_bar" in strategy.read  # the probe sees the runner's reads
    assert "__dict__" not in strategy.read


def test_takes_fills_follows_the_class_and_the_instance() -> None:
    runner = _runner()
    plain, own = Strategy(), Strategy()
    own.on_fill = lambda fill, ctx: None  # type: ignore[method-assign]
    for strategy, sid in (
        (plain, "plain"),
        (own, "own"),
        (_Hears(), "hears"),
        (_HearsByClassMethod(), "classmethod"),
    ):
        runner.add(strategy, "a", strategy_id=sid)
    assert [slot.takes_fills for slot in runner._slots] == [False, True, True, True]
