"""A signal strategy's frame must keep its rows and hold booleans in its signal columns.

Before, text or prices in ``enter_long``/``exit_long`` read as True on every bar, and a frame
with rows dropped failed with a bare IndexError (or put the signals on other bars).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trading.engine.signal_strategy import SignalStrategy, StrategyCodeError


def _frame(n: int = 40) -> pd.DataFrame:
    close = 100.0 + np.cumsum(np.random.default_rng(7).normal(0, 1, n))
    return pd.DataFrame({
        "ts": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"),
        "open": close, "high": close + 1, "low": close - 1, "close": close,
        "volume": np.ones(n),
    })  # fmt: skip


def _strategy(entries) -> SignalStrategy:
    class Rules(SignalStrategy):
        def entries(self, df):
            return entries(df)

    return Rules()


def _set(name, value):
    def rule(df):
        df[name] = value(df) if callable(value) else value
        return df

    return rule


@pytest.mark.parametrize(
    "rule, column, shown",
    [
        (_set("enter_long", "no"), "enter_long", "'no'"),
        (_set("exit_long", lambda df: df["close"]), "exit_long", "float64"),
        (_set("enter_short", lambda df: (df["close"] > 100).astype(int) * 2), "enter_short", "2"),
    ],
)
def test_a_signal_column_that_is_no_boolean_is_refused_naming_it(rule, column, shown):
    with pytest.raises(StrategyCodeError) as caught:
        _strategy(rule).signals(_frame())
    assert repr(column) in str(caught.value) and shown in str(caught.value)


def test_a_frame_with_rows_dropped_is_refused_with_both_counts():
    rule = _set("enter_long", lambda df: df["close"] > 100)
    with pytest.raises(StrategyCodeError, match=r"one row per bar \(40 bars, got 35 rows"):
        _strategy(lambda df: rule(df).iloc[:-5]).signals(_frame())


@pytest.mark.parametrize(
    "value",
    [
        lambda df: df["close"] > 100,  # bool
        lambda df: (df["close"] > 100).shift(1),  # object: True/False and NaN
        lambda df: (df["close"] > 100).astype(int),  # 1/0
        lambda df: (df["close"] > 100).astype(float).where(df["close"] > 99),  # 1.0/0.0/NaN
        lambda df: (df["close"] > 100).astype("boolean"),  # pandas' nullable booleans
    ],
)
def test_booleans_ones_and_zeros_and_missing_values_are_taken(value):
    df = _strategy(_set("enter_long", value)).signals(_frame())
    table = SignalStrategy.table_of(df)
    wanted = value(_frame()).fillna(False).astype(bool).to_numpy()
    assert (table[1] == 1.0).tolist() == wanted.tolist()


@pytest.mark.parametrize("size", [-1.0, 0.0, float("inf")])
def test_a_size_no_share_of_equity_is_refused_naming_the_column_of_entries(size):
    # The engine reads the size as it enters, in its bar step: the error names the user's
    # column and the bar (it said "on_bar", the engine's own step, before).
    from decimal import Decimal

    from backtesting.engine.runner import BacktestConfig, run_backtest

    def rule(df):
        df["enter_long"] = df["close"] > df["close"].shift(1)
        df["exit_long"] = df["close"] < df["close"].shift(1)
        df["size"] = size
        return df

    bars = _frame().assign(symbol="BTC-USD")
    config = BacktestConfig(initial_cash=Decimal(10_000), fill_model="next_open")
    with pytest.raises(StrategyCodeError) as caught:
        run_backtest(_strategy(rule), bars, config)
    message = str(caught.value)
    assert "in the size column entries() wrote" in message and repr(size) in message
    assert "on_bar" not in message and "BTC-USD bar of 2026-01-01T" in message
