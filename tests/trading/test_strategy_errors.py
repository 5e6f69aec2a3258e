"""A user strategy that raises: a clear error (file, line, bar) in backtests; live, it is stopped
alone, its account moves to reducing, a risk event and an alert are stored, the engine goes on."""

from __future__ import annotations

import pytest

from backtesting.engine.runner import BacktestConfig, run_backtest
from monitoring.models import Alert, AlertRule
from risk.models import TradingState
from tests.backtesting.engine.helpers import D, walk_frame
from tests.runtime_harness import db
from tests.trading.strategy_failures import (
    run_live_pair,
    runtrader_until_strategy_fails,
    strategy_file,
)
from trading.engine.signal_strategy import StrategyCodeError
from trading.engine.strategies import create_strategy

RAISES = """
from decimal import Decimal

from trading.engine.strategy import Strategy


class RaisesLater(Strategy):
    default_params = {"after": 5}

    def on_start(self, ctx):
        self.seen = 0

    def on_bar(self, bar, ctx):
        self.seen += 1
        if self.seen > self.params["after"]:
            return 1 / 0
        ctx.buy(bar.symbol, Decimal("0.001"))
"""


@pytest.fixture
def raises_later(tmp_path):
    return strategy_file(tmp_path, RAISES, "RaisesLater")


def test_a_backtest_stops_with_the_file_line_and_bar(raises_later):
    spec, path = raises_later
    bars = walk_frame(50)
    with pytest.raises(StrategyCodeError) as caught:
        run_backtest(create_strategy(spec), bars, BacktestConfig(taker_fee_bps=D(10)))
    message = str(caught.value)
    sixth = bars["ts"].iloc[5]
    assert "ZeroDivisionError" in message and f"{path}, line 16" in message
    assert f"on_bar: the {bars['symbol'].iloc[0]} bar of {sixth}" in message


def test_live_engine_stops_the_strategy_alone_and_the_other_one_trades_on(raises_later):
    spec, _ = raises_later
    bars = walk_frame(20)
    oms, failures = run_live_pair(spec, bars)
    assert [(a, s) for a, s, _ in failures] == [("a", "RaisesLater")]
    assert "ZeroDivisionError" in str(failures[0][2])
    symbol = bars["symbol"].iloc[0]
    # Three buys before it raised, none after; the other account bought on every bar.
    assert oms.portfolio("a").quantity(symbol) == D("0.003")
    assert oms.portfolio("b").quantity(symbol) == D("0.020")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_runtrader_moves_the_account_to_reducing_and_alerts(paper, raises_later):
    spec, path = raises_later
    await db(AlertRule.objects.create)(name="strategies", source="risk", kind="strategy")
    event = await runtrader_until_strategy_fails(paper, spec, after=2)
    assert str(path) in event.message and "ZeroDivisionError" in event.message
    assert event.severity == "critical"
    state = await db(TradingState.objects.get)(account=paper)
    assert state.state == "reducing"
    alert = await db(Alert.objects.get)(kind="strategy")
    assert alert.account == "paper" and "RaisesLater" in alert.message
