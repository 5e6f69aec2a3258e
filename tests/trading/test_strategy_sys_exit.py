"""Strategy code calling ``sys.exit()`` is a strategy error like any other exception.

It used to escape the runner's ``except Exception``: a backtest ended without saying where, and
live, one strategy's ``sys.exit(0)`` stopped the whole engine with exit status 0 (a supervisor
with ``Restart=on-failure`` would not restart it). KeyboardInterrupt still stops everything.
"""

from __future__ import annotations

import textwrap

import pytest

from backtesting.engine.runner import BacktestConfig, run_backtest
from tests.backtesting.engine.helpers import D, walk_frame
from tests.trading.strategy_failures import (
    run_live_pair,
    runtrader_until_strategy_fails,
    strategy_file,
)
from trading.engine.signal_strategy import StrategyCodeError
from trading.engine.strategies import create_strategy

EXITS = """
import sys
from decimal import Decimal

from trading.engine.strategy import Strategy


class ExitsLater(Strategy):
    default_params = {"after": 5, "where": "bar", "how": "exit"}

    def on_start(self, ctx):
        self.seen = 0

    def stop_now(self):
        if self.params["how"] == "interrupt":
            raise KeyboardInterrupt
        sys.exit(0)

    def on_bar(self, bar, ctx):
        self.seen += 1
        if self.seen > self.params["after"] and self.params["where"] == "bar":
            self.stop_now()
        ctx.buy(bar.symbol, Decimal("0.001"))

    def on_fill(self, fill, ctx):
        if self.seen > self.params["after"] and self.params["where"] == "fill":
            self.stop_now()
"""

SIGNAL_EXITS = """
import sys

from trading.engine.signal_strategy import SignalStrategy


class ExitsInIndicators(SignalStrategy):
    def indicators(self, df):
        sys.exit(0)
"""


@pytest.mark.parametrize(("where", "event"), [("bar", "on_bar: the"), ("fill", "on_fill:")])
def test_a_backtest_fails_naming_file_line_and_event(tmp_path, where, event):
    spec, path = strategy_file(tmp_path, EXITS, "ExitsLater")
    with pytest.raises(StrategyCodeError) as caught:
        run_backtest(create_strategy(spec, where=where), walk_frame(50), BacktestConfig())
    message = str(caught.value)
    line = textwrap.dedent(EXITS).splitlines().index("        sys.exit(0)") + 1
    assert "raised SystemExit: 0" in message and f"{path}, line {line};" in message, message
    assert event in message


def test_a_signal_strategy_exiting_in_indicators_fails_the_backtest(tmp_path):
    spec, path = strategy_file(tmp_path, SIGNAL_EXITS, "ExitsInIndicators")
    with pytest.raises(StrategyCodeError, match=r"SystemExit.*line 9.*indicators\(\)"):
        run_backtest(create_strategy(spec), walk_frame(50), BacktestConfig())


def test_keyboard_interrupt_is_not_taken_for_a_strategy_error(tmp_path):
    spec, _ = strategy_file(tmp_path, EXITS, "ExitsLater")
    with pytest.raises(KeyboardInterrupt):
        run_backtest(create_strategy(spec, how="interrupt"), walk_frame(50), BacktestConfig())


def test_live_runner_stops_that_strategy_alone(tmp_path):
    spec, _ = strategy_file(tmp_path, EXITS, "ExitsLater")
    bars = walk_frame(20)
    oms, failures = run_live_pair(spec, bars)
    assert [(a, s) for a, s, _ in failures] == [("a", "ExitsLater")]
    assert "SystemExit" in str(failures[0][2])
    symbol = bars["symbol"].iloc[0]
    assert oms.portfolio("a").quantity(symbol) == D("0.003")
    assert oms.portfolio("b").quantity(symbol) == D("0.020")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_runtrader_keeps_running_with_the_account_reducing(paper, tmp_path):
    spec, path = strategy_file(tmp_path, EXITS, "ExitsLater")
    event = await runtrader_until_strategy_fails(paper, spec, after=2)
    assert str(path) in event.message and "SystemExit" in event.message


STARTS = """
import sys

from trading.engine.strategy import Strategy


class ExitsAt(Strategy):
    default_params = {"at": "start"}

    def on_start(self, ctx):
        if self.params["at"] == "start":
            sys.exit(0)

    def on_stop(self, ctx):
        if self.params["at"] == "stop":
            sys.exit(3)
"""


@pytest.mark.parametrize(("at", "code"), [("start", 0), ("stop", 3)])
def test_sys_exit_in_on_start_or_on_stop_fails_the_backtest_naming_it(tmp_path, at, code):
    spec, path = strategy_file(tmp_path, STARTS, "ExitsAt")
    with pytest.raises(StrategyCodeError) as caught:
        run_backtest(create_strategy(spec, at=at), walk_frame(20), BacktestConfig())
    message = str(caught.value)
    assert f"raised SystemExit: {code}" in message and f"{path}, line" in message
    assert message.endswith(f"; on_{at})"), message


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_runtrader_carries_on_when_on_start_exits(paper, tmp_path):
    spec, path = strategy_file(tmp_path, STARTS, "ExitsAt")
    event = await runtrader_until_strategy_fails(paper, spec)
    assert str(path) in event.message and "SystemExit" in event.message
