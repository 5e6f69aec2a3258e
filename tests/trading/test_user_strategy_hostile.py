"""Hostile or careless ``--strategy`` values and strategy code get a clear error, never a run.

Found walking through issue #14 as a user would: ``--strategy file.py:SignalStrategy`` (the base
class the file imports) ran a backtest that could never trade and renamed the engine's
``SignalStrategy`` class for the rest of the process; ``ctx.buy(sym, "lots")`` failed as a bare
``InvalidOperation: [<class 'decimal.ConversionSyntax'>]``.
"""

from __future__ import annotations

import textwrap

import pytest

from backtesting.engine.runner import BacktestConfig, run_backtest
from tests.backtesting.engine.helpers import walk_frame
from trading.engine.errors import StrategyConfigError
from trading.engine.signal_strategy import SignalStrategy
from trading.engine.strategies import STRATEGIES, create_strategy, resolve_strategy

USER_FILE = """
from trading.engine.signal_strategy import SignalStrategy
from trading.engine.strategy import Strategy


class Mine(SignalStrategy):
    def entries(self, df):
        df["enter_long"] = df["close"] > df["close"].shift(1)
        return df
"""


@pytest.mark.parametrize("base", ["SignalStrategy", "Strategy"])
def test_a_base_class_imported_by_the_file_is_not_a_strategy(tmp_path, base) -> None:
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent(USER_FILE))
    name_before = vars(SignalStrategy).get("name")
    expected = f"mine.py:{base} is a base class, not a strategy \\(strategy classes: Mine\\)"
    with pytest.raises(StrategyConfigError, match=expected):
        resolve_strategy(f"{path}:{base}")
    assert vars(SignalStrategy).get("name") == name_before  # the engine's class is untouched
    assert f"{path.resolve()}:{base}" not in STRATEGIES
    assert resolve_strategy(f"{path}:Mine") == f"{path.resolve()}:Mine"  # the user's class loads


EVENT = """
from trading.engine.strategy import Strategy


class Asks(Strategy):
    default_params = {"how": "buy", "qty": "lots"}

    def on_bar(self, bar, ctx):
        if self.params["how"] == "target":
            ctx.target_position(bar.symbol, self.params["qty"])
        else:
            ctx.buy(bar.symbol, self.params["qty"])
"""


@pytest.mark.parametrize("how", ["buy", "target"])
@pytest.mark.parametrize("qty", ["lots", "", "1,5", "0x10"])
def test_a_quantity_that_is_not_a_number_names_strategy_and_value(tmp_path, how, qty) -> None:
    path = tmp_path / "asks.py"
    path.write_text(textwrap.dedent(EVENT))
    strategy = create_strategy(f"{path}:Asks", how=how, qty=qty)
    with pytest.raises(StrategyConfigError) as caught:
        run_backtest(strategy, walk_frame(30), BacktestConfig())
    message = str(caught.value)
    assert "ConversionSyntax" not in message
    assert f"{qty!r}" in message and "a finite number of units" in message
    assert "asks.py" in message  # the user's file, as for any error of theirs


def test_the_event_template_refuses_fast_not_below_slow_and_matches_the_built_in(tmp_path):
    # Its running sums kept `slow` closes: with fast > slow (a pair of its declared ranges that
    # a sweep tries) the fast sum never dropped a close and grew for ever, silently.
    from trading.strategy_templates import EVENT

    path = tmp_path / "my_event.py"
    path.write_text(EVENT.format(name="MyEvent"))
    spec = f"{path}:MyEvent"
    for fast, slow in ((40, 10), (20, 20)):
        with pytest.raises(StrategyConfigError, match=f"MyEvent: need fast < slow, got {fast}"):
            create_strategy(spec, fast=fast, slow=slow)
    bars = walk_frame(400)
    mine = run_backtest(create_strategy(spec, fast=4, slow=10, lot="1e-8"), bars, BacktestConfig())
    built_in = run_backtest(create_strategy("sma_cross", fast=4, slow=10), bars, BacktestConfig())
    assert len(mine.orders) == len(built_in.orders) > 4
    assert mine.final_equity == built_in.final_equity
