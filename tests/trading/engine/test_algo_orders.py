"""TWAP/VWAP from strategies: the runner works the parent in children, in backtests and live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from backtesting.engine.runner import BacktestConfig, run_backtest
from marketdata.engine.events import Trade
from tests.backtesting.engine.helpers import SYM, frame, minute
from trading.engine.algo_book import AlgoBook, AlgoSpec, algo_child_id
from trading.engine.errors import AlgoConfigError
from trading.engine.oms import OrderManager
from trading.engine.orders import OrderIntent, OrderSide
from trading.engine.portfolio import Portfolio
from trading.engine.runner import StrategyRunner
from trading.engine.session import TradingSession
from trading.engine.strategy import Strategy
from trading.engine.venue import PaperVenue

D = Decimal


class BuyWithAlgo(Strategy):
    """Buys 10 once through an algo, then does nothing."""

    name = "buy_with_algo"
    bought = False
    algo = "twap"
    extra: dict = {}

    def on_bar(self, bar, ctx) -> None:
        if not self.bought:
            self.bought = True
            ctx.buy(bar.symbol, 10, algo=self.algo, duration=300, slices=5, **self.extra)


def _flat(n: int) -> list[tuple[float, float, float, float, float]]:
    return [(100.0 + i * 0.01, 100.5 + i * 0.01, 99.5, 100.0 + i * 0.01, 1_000.0) for i in range(n)]


def test_a_twap_parent_is_filled_in_equal_children_across_the_schedule_in_a_backtest():
    result = run_backtest(BuyWithAlgo(), frame(_flat(12)), BacktestConfig(fill_model="next_open"))
    children = [o for o in result.orders if o.strategy == "buy_with_algo"]
    assert [o.quantity for o in children] == [D(2)] * 5
    parent = children[0].signal.split(":")[0]
    assert [o.client_order_id for o in children] == [algo_child_id(parent, i) for i in range(5)]
    assert sum(f.quantity for f in result.fills) == D(10)
    # One child per minute from the decision (end of bar 0), each filling at the next open.
    assert [f.ts for f in result.fills] == [minute(i) for i in range(1, 6)]


def test_a_vwap_parent_follows_its_volume_profile():
    strategy = BuyWithAlgo()
    strategy.algo, strategy.extra = "vwap", {"profile": [1, 1, 2, 4, 2]}
    result = run_backtest(strategy, frame(_flat(12)), BacktestConfig(fill_model="next_open"))
    assert [f.quantity for f in result.fills] == [D(1), D(1), D(2), D(4), D(2)]


def test_runtraders_session_works_the_same_parent_on_trade_prints():
    venue = PaperVenue()
    oms = OrderManager(venue)
    oms.add_account(Portfolio("acct", D(100_000), ts=minute(0)))
    runner = StrategyRunner(oms, bars_to_venue=False)
    runner.add(BuyWithAlgo(), "acct")
    session = TradingSession(oms, runner, "acct", timeframe="1m")
    runner.start(minute(0))
    filled = []
    oms.add_listener(type("L", (), {"on_fill": lambda s, f: filled.append(f),
                                    "on_order": lambda s, o: None})())  # fmt: skip
    t = minute(0)
    for second in range(0, 8 * 60, 10):  # a print every 10 s, bars closing every minute
        t = minute(0) + timedelta(seconds=second)
        session.on_event(Trade(SYM, t, 100.0, 5.0))
        if second % 60 == 50:
            session.on_event(_bar_at(second // 60))
    assert sum(f.quantity for f in filled) == D(10) and len(filled) == 5
    assert not runner.algos.active and len(runner.algos.finished) == 1


def _bar_at(i: int):
    from tests.backtesting.engine.helpers import bar

    return bar(i, 100.0, 100.5, 99.5, 100.0, 30.0)


def test_bad_algo_requests_are_refused_when_asked():
    with pytest.raises(AlgoConfigError, match="vwap needs a volume profile"):
        AlgoSpec.from_request("vwap", duration=60, slices=3)
    with pytest.raises(AlgoConfigError, match="algo must be one of"):
        AlgoSpec.from_request("iceberg", duration=60)
    with pytest.raises(AlgoConfigError, match="duration must be > 0"):
        AlgoSpec.from_request("twap", duration=0)


def test_a_restored_parent_never_resends_a_child_and_catches_up_what_is_left():
    oms = OrderManager(PaperVenue())
    oms.add_account(Portfolio("acct", D(100_000), ts=minute(0)))
    oms.on_trade(Trade(SYM, minute(0), 100.0, 1.0))
    book = AlgoBook(oms)
    spec = AlgoSpec.from_request("twap", duration=300, slices=5)
    parent = OrderIntent(account="acct", symbol=SYM, side=OrderSide.BUY, quantity=D(10),
                         client_order_id="p1", metadata={"algo": spec.to_metadata()})  # fmt: skip
    first = book.start(parent, minute(0))
    sent = book.due(minute(0))
    assert [c.client_order_id for c in sent] == [algo_child_id("p1", 0)] and first.filled == 0
    # The engine restarts after 3 minutes with child 0 filled: the next is child 1 and it asks
    # for everything due by now (6 of 10), the missed slices caught up in one child.
    done = sent[0].to_order(algo_child_id("p1", 0), minute(0))
    done.filled_quantity, done.avg_fill_price = D(2), D(100)
    from trading.engine.orders import OrderStatus

    done.status = OrderStatus.FILLED
    restored = AlgoBook(oms)
    algo = restored.restore(parent, minute(0), [done], minute(3) + timedelta(seconds=1))
    assert algo.filled == D(2)
    again = restored.due(minute(3) + timedelta(seconds=1))
    assert [(c.client_order_id, c.quantity) for c in again] == [(algo_child_id("p1", 1), D(6))]


def test_now_is_utc():  # the helpers' clock is UTC: the schedule above is in UTC minutes
    assert minute(0).tzinfo is UTC and minute(0) == datetime(2024, 3, 1, tzinfo=UTC)


def test_children_held_back_by_the_gate_return_to_the_schedule():
    held = {"on": True}
    oms = OrderManager(PaperVenue())
    oms.add_account(Portfolio("backtest", D(100_000), ts=minute(0)))
    runner = StrategyRunner(oms)
    # The parent passes; its children are held back while "halted" (as ModeGate would).
    runner.gate = lambda intent: intent.metadata is not None or not held["on"]
    runner.add(BuyWithAlgo(), "backtest")
    runner.start(minute(0))
    for i in range(3):
        runner.on_bar(_bar_at(i))
    algo = next(iter(runner.algos.active.values()))
    assert algo.working == 0 and algo.filled == 0  # nothing counted as sent
    held["on"] = False
    for i in range(3, 10):
        runner.on_bar(_bar_at(i))
    assert algo.filled == D(10) and not runner.algos.active
