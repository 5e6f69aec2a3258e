"""Users' own strategies: found by name in STRATEGY_PATHS or by path; signal style; errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from backtesting.engine.runner import BacktestConfig, run_backtest
from tests.backtesting.engine.helpers import D, sim_frame, walk_frame
from trading.engine import user_strategies
from trading.engine.errors import StrategyConfigError
from trading.engine.signal_strategy import StrategyCodeError
from trading.engine.strategies import STRATEGIES, create_strategy, resolve_strategy
from trading.strategy_templates import SIGNAL

FEES = BacktestConfig(taker_fee_bps=D(10))

# The file ``manage.py strategy new UserSma --style signal`` writes (an SMA cross): the tests run
# what users start from, not a copy of it.
SIGNAL_SMA = SIGNAL.format(name="UserSma")

BROKEN = """
from trading.engine.strategy import Strategy


class Broken(Strategy):
    def on_bar(self, bar, ctx):
        if bar.close > 0:
            raise ValueError("user bug")
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def strategy_folder(tmp_path):
    before = user_strategies.strategy_paths()
    folder = tmp_path / "strategies"
    folder.mkdir()
    user_strategies.set_strategy_paths([folder])
    yield folder
    user_strategies.set_strategy_paths(before)
    for key in [k for k in STRATEGIES if str(tmp_path) in k or k in {"UserSma", "Broken"}]:
        del STRATEGIES[key]


def orders_of(result) -> list[tuple]:
    return [(o.created_ts, o.side.value, o.quantity) for o in result.orders]


def test_a_class_in_the_strategy_folder_is_found_by_name_and_by_path(strategy_folder):
    path = write(strategy_folder, "user_sma.py", SIGNAL_SMA)
    assert resolve_strategy("UserSma") == "UserSma"
    spec = resolve_strategy(f"{path}:UserSma")
    assert spec == f"{path.resolve()}:UserSma" and STRATEGIES[spec] is STRATEGIES["UserSma"]
    assert create_strategy("UserSma", fast=5, slow=20).params["fast"] == 5
    with pytest.raises(StrategyConfigError, match="unknown parameter"):
        create_strategy("UserSma", nope=1)
    with pytest.raises(StrategyConfigError, match="no strategy class 'Nope'.*UserSma"):
        resolve_strategy(f"{path}:Nope")
    with pytest.raises(StrategyConfigError, match="unknown strategy 'Missing'.*strategy folders"):
        resolve_strategy("Missing")


def test_a_file_that_fails_to_import_is_named_with_its_line(strategy_folder):
    path = write(strategy_folder, "bad.py", "x = 1\nraise RuntimeError('at import')\n")
    with pytest.raises(StrategyConfigError, match=r"bad\.py failed to import: line 2: Runtime"):
        resolve_strategy(f"{path}:X")


@pytest.mark.parametrize("frame", [walk_frame, sim_frame], ids=["random_walk", "simulated"])
def test_signal_style_live_and_backtest_give_the_same_orders_on_the_same_bars(
    strategy_folder, frame
):
    write(strategy_folder, "user_sma.py", SIGNAL_SMA)
    bars = frame(2000)
    table = create_strategy("UserSma")
    assert type(table).has_decision_table()
    backtest = run_backtest(table, bars, FEES)  # decision table: the sparse replay
    live = run_backtest(create_strategy("UserSma"), bars, FEES, sparse=False)  # on_bar each bar
    assert len(backtest.orders) > 20
    assert orders_of(backtest) == orders_of(live)
    assert backtest.final_equity == live.final_equity
    # The same rules as the built-in SMA cross (its incremental means): the same orders.
    builtin = run_backtest(create_strategy("sma_cross"), bars, FEES)
    assert orders_of(builtin) == orders_of(backtest)


def test_a_signal_strategy_with_stops_runs_every_bar_and_attaches_the_bracket(strategy_folder):
    text = SIGNAL_SMA.replace(
        '        df["enter_long"] = df["fast"] > df["slow"]\n',
        '        df["enter_long"] = df["fast"] > df["slow"]\n'
        '        df["stop_loss"] = df["close"] * 0.99\n',
    )
    path = write(strategy_folder, "stopped.py", text.replace("UserSma", "Stopped"))
    strategy = create_strategy(f"{path}:Stopped")
    result = run_backtest(strategy, walk_frame(1500), FEES)
    stops = [o for o in result.orders if o.parent_id and o.type.value == "stop"]
    assert stops and all(o.side.value == "sell" for o in stops)


def test_a_user_error_names_file_line_and_bar(strategy_folder):
    text = SIGNAL_SMA.replace('df["fast"] > df["slow"]', 'df["fast"] > df["nope"]')
    path = write(strategy_folder, "boom.py", text.replace("UserSma", "Boom"))
    line = 1 + textwrap.dedent(text).splitlines().index(
        '        df["enter_long"] = df["fast"] > df["nope"]'
    )
    with pytest.raises(StrategyCodeError) as caught:
        run_backtest(create_strategy(f"{path}:Boom"), walk_frame(200), FEES)
    message = str(caught.value)
    assert f"{path.resolve()}, line {line}" in message and "KeyError" in message
    assert "in entries()" in message
    with pytest.raises(StrategyCodeError, match=rf"line {line}; in entries\(\) at the bar of"):
        run_backtest(create_strategy(f"{path}:Boom"), walk_frame(200), FEES, sparse=False)
