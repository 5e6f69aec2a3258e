"""The pairs strategy trades a cointegrated pair in a backtest and stops when the pair breaks."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from backtesting.engine.runner import BacktestConfig, run_backtest
from tests.research.synthetic import cointegrated_pair, hourly_bars, random_walk_prices
from trading.engine.errors import StrategyConfigError
from trading.engine.strategies import create_strategy

A, B = "AAA-USD", "BBB-USD"


def long_bars(a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    """Return the backtester's long frame for the two legs."""
    frame = pd.concat([hourly_bars(a, A), hourly_bars(b, B)])
    return frame.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def held(fills) -> dict[str, Decimal]:
    """Return the signed quantity held per leg after ``fills`` (exact Decimal)."""
    position = {A: Decimal(0), B: Decimal(0)}
    for fill in fills:
        position[fill.symbol] += fill.quantity if fill.side.value == "buy" else -fill.quantity
    return position


def test_pairs_trades_both_legs_of_a_cointegrated_pair_and_earns_from_reversion():
    a, b = cointegrated_pair(1500, seed=21)
    strategy = create_strategy("pairs", symbol_a=A, symbol_b=B)
    result = run_backtest(strategy, long_bars(a, b), BacktestConfig(timeframe="1h"))
    sides = {(f.symbol, f.side.value) for f in result.fills}
    assert sides == {(A, "buy"), (A, "sell"), (B, "buy"), (B, "sell")}
    assert result.metrics["trades"] >= 10
    assert result.metrics["total_return"] > 0
    # Legs are opposite: whenever A is held long, B is held short and vice versa.
    position = held(result.fills)
    assert position[A] * position[B] <= 0


def test_pairs_closes_and_stays_out_once_cointegration_breaks():
    a, b = cointegrated_pair(1200, seed=22)
    rng = np.random.default_rng(23)
    broken_a = np.concatenate([a[:600], a[599] * random_walk_prices(600, rng) / 100])
    strategy = create_strategy(
        "pairs", symbol_a=A, symbol_b=B, coint_window=300, check_every=25, stop_pvalue=0.05
    )
    result = run_backtest(strategy, long_bars(broken_a, b), BacktestConfig(timeframe="1h"))
    assert strategy._cointegrated is False
    orders = sorted(result.orders, key=lambda o: o.created_ts)
    assert orders, "the pair traded while it was cointegrated"
    # The break is caught after the switch at bar 600; the last orders close both legs.
    assert orders[-1].signal == "pairs:flat"
    assert orders[-1].created_ts >= hourly_bars(a, A)["ts"][600]
    assert held(result.fills) == {A: 0, B: 0}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"symbol_a": A, "symbol_b": A}, "two different symbols"),
        ({"symbol_a": A, "symbol_b": B, "entry": 0.5, "exit": 1.0}, "exit < entry"),
        ({"symbol_a": A, "symbol_b": B, "lookback": 10}, "lookback"),
        ({"symbol_a": A, "symbol_b": B, "zscore": 2}, "unknown parameter"),
    ],
)
def test_bad_pairs_parameters_are_refused(params, message):
    with pytest.raises(StrategyConfigError, match=message):
        create_strategy("pairs", **params)
