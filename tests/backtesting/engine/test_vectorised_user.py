"""Users' signal-style strategies on the vectorised path: the event-driven runner's trades."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from backtesting.engine.errors import UnsupportedStrategyError
from backtesting.engine.fills import FixedBps
from backtesting.engine.optimize import grid_search, local_evaluator
from backtesting.engine.runner import BacktestConfig, prepare_bars, run_backtest
from backtesting.engine.vectorised import run_vectorised, sweep
from tests.backtesting.engine.helpers import D, sim_frame, walk_frame
from trading.engine import user_strategies
from trading.engine.errors import StrategyConfigError
from trading.engine.strategies import STRATEGIES, create_strategy
from trading.strategy_templates import SIGNAL

LONG_ONLY = SIGNAL.format(name="UserSma")  # what ``strategy new --style signal`` writes

# Long and short with reversals (long -> short on one bar), exits on a band, and a rule that
# reads the highs and lows (the frame must carry them, not the closes thrice).
LONG_SHORT = """
from trading.engine.signal_strategy import SignalStrategy


class UserSwing(SignalStrategy):
    default_params = {"period": 12, "band": 0.002}

    def indicators(self, df):
        n = self.params["period"]
        df["mid"] = df["close"].rolling(n).mean()
        df["range"] = (df["high"] - df["low"]).rolling(n).mean()
        return df

    def entries(self, df):
        wide = df["range"] > df["range"].rolling(50).median()
        df["enter_long"] = (df["close"] > df["mid"] * (1 + self.params["band"])) & wide
        df["enter_short"] = (df["close"] < df["mid"] * (1 - self.params["band"])) & wide
        return df

    def exits(self, df):
        df["exit_long"] = df["close"] < df["mid"]
        df["exit_short"] = df["close"] > df["mid"]
        return df
"""

STOPPED = LONG_ONLY.replace("UserSma", "UserStopped").replace(
    '        df["enter_long"] = df["fast"] > df["slow"]\n',
    '        df["enter_long"] = df["fast"] > df["slow"]\n'
    '        df["stop_loss"] = df["close"] * 0.99\n',
)

EVENT = """
from trading.engine.strategy import Strategy


class UserEvent(Strategy):
    def on_bar(self, bar, ctx):
        pass
"""


@pytest.fixture
def folder(tmp_path):
    before = user_strategies.strategy_paths()
    path = tmp_path / "strategies"
    path.mkdir()
    for name, text in (
        ("sma", LONG_ONLY),
        ("swing", LONG_SHORT),
        ("stopped", STOPPED),
        ("event", EVENT),
    ):
        (path / f"{name}.py").write_text(textwrap.dedent(text))
    user_strategies.set_strategy_paths([path])
    yield path
    user_strategies.set_strategy_paths(before)
    for key in [k for k in STRATEGIES if str(tmp_path) in k or k.startswith("User")]:
        del STRATEGIES[key]


def assert_same(event, vector) -> None:
    """Same round trips (times, prices, quantities), final equity and equity curve."""
    assert len(event.trades) == len(vector.trades)
    for e, v in zip(event.trades, vector.trades, strict=True):
        assert e.side == v.side
        assert e.entry_ts == vector.timestamps(v.entry_index)
        assert e.exit_ts == vector.timestamps(v.exit_index)
        assert float(e.entry_price) == v.entry_price
        assert float(e.quantity) == pytest.approx(v.quantity, rel=1e-12)
    assert float(event.final_equity) == pytest.approx(vector.final_equity, rel=1e-10)
    np.testing.assert_allclose(event.equity.to_numpy(), vector.equity, rtol=1e-10)
    for key in ("sharpe", "max_drawdown", "trades", "win_rate", "exposure_time"):
        assert event.metrics[key] == pytest.approx(vector.metrics[key], rel=1e-6, nan_ok=True)


@pytest.mark.parametrize("frame", [walk_frame, sim_frame], ids=["random_walk", "simulated"])
@pytest.mark.parametrize("model", ["next_open", "close"])
def test_a_user_signal_strategy_gives_the_event_driven_trades(folder, frame, model) -> None:
    bars = prepare_bars(frame(3000))
    cfg = BacktestConfig(taker_fee_bps=D(10), fill_model=model)
    params = {"fast": 8, "slow": 21, "fraction": 0.3}
    event = run_backtest(create_strategy("UserSma", **params), bars, cfg)
    vector = run_vectorised("UserSma", bars, params, cfg)
    assert len(vector.trades) > 20
    assert_same(event, vector)


@pytest.mark.parametrize("model", ["next_open", "close"])
@pytest.mark.parametrize("leverage", ["1", "3"])
def test_long_short_with_reversals_gives_the_event_driven_trades(folder, leverage, model) -> None:
    bars = prepare_bars(walk_frame(4000, seed=21))
    cfg = BacktestConfig(
        taker_fee_bps=D(10), leverage=D(leverage), fill_model=model, slippage=FixedBps(3)
    )
    spec = f"{folder / 'swing.py'}:UserSwing"
    params = {"fraction": 0.9 if leverage == "1" else 2.5}
    event = run_backtest(create_strategy(spec, **params), bars, cfg)
    vector = run_vectorised(spec, bars, params, cfg)
    sides = {t.side for t in vector.trades}
    reversals = sum(
        1
        for a, b in zip(vector.trades, vector.trades[1:], strict=False)
        if a.exit_index == b.entry_index and a.side != b.side
    )
    assert sides == {"long", "short"} and reversals > 5
    assert_same(event, vector)


def test_entries_too_small_for_a_lot_are_retried_as_the_strategy_does(folder) -> None:
    bars = prepare_bars(walk_frame(2500, seed=8))
    # About one lot at the median price: entries above it size to nothing and are tried again.
    cfg = BacktestConfig(initial_cash=D("0.00000085"), taker_fee_bps=D(10))
    event = run_backtest(create_strategy("UserSma", fraction=1), bars, cfg)
    vector = run_vectorised("UserSma", bars, {"fraction": 1}, cfg)
    assert 0 < len(vector.trades)
    assert_same(event, vector)


def test_what_the_vectorised_path_cannot_reproduce_is_refused(folder) -> None:
    bars = prepare_bars(walk_frame(300))
    with pytest.raises(UnsupportedStrategyError, match="stop_loss"):
        run_vectorised("UserStopped", bars)
    with pytest.raises(UnsupportedStrategyError, match="signal-style"):
        run_vectorised("UserEvent", bars)
    with pytest.raises(UnsupportedStrategyError, match="unknown strategy 'Nope'"):
        run_vectorised("Nope", bars)


def test_a_table_that_lost_rows_is_an_error_not_a_shifted_backtest(folder) -> None:
    text = LONG_ONLY.replace("UserSma", "UserDrops").replace(
        'df["slow"] = df["close"].rolling(self.params["slow"]).mean()\n        return df',
        'df["slow"] = df["close"].rolling(self.params["slow"]).mean()\n        return df.dropna()',
    )
    (folder / "drops.py").write_text(textwrap.dedent(text))
    with pytest.raises(StrategyConfigError, match=r"one row per bar \(300 bars, got 271 rows"):
        run_vectorised("UserDrops", prepare_bars(walk_frame(300)))


def test_sweeps_and_grid_search_take_a_user_strategy_by_name_or_path(folder) -> None:
    bars = prepare_bars(walk_frame(2500, seed=4))
    cfg = BacktestConfig(taker_fee_bps=D(10))
    spec = f"{folder / 'sma.py'}:UserSma"
    sets = [{"fast": f, "slow": s} for f in (5, 8) for s in (20, 30)]
    table = sweep(spec, bars, sets, cfg)
    for k, params in enumerate(sets):
        event = run_backtest(create_strategy(spec, **params), bars, cfg)
        assert table.loc[k, "final_equity"] == pytest.approx(float(event.final_equity), rel=1e-10)
        assert table.loc[k, "trades"] == len([t for t in event.trades if not t.is_open])
    found = grid_search(
        {"fast": [5, 8], "slow": [20, 30]}, local_evaluator("UserSma", bars, cfg), "sharpe"
    )
    best = run_vectorised("UserSma", bars, found.best.params, cfg)
    assert found.best.metrics["sharpe"] == best.metrics["sharpe"]
    assert max(found.sharpes()) == best.metrics["sharpe"]
    with pytest.raises(UnsupportedStrategyError):
        local_evaluator("UserEvent", bars, cfg)
