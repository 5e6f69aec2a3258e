"""A signal strategy's functions read the bars without a copy, and can never change them.

``decision_table`` hands the functions read-only views of the series' price columns (a million
bars' copy cost more than most indicators); functions that write into those columns in place
raise there and run again on a copy: same table, and the bars the backtest fills on unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

from backtesting.engine.runner import BacktestConfig, run_backtest
from tests.backtesting.engine.helpers import D, walk_frame
from trading.engine.series import IndicatorCache
from trading.engine.signal_strategy import SignalStrategy


class _Cross(SignalStrategy):
    """Long while the 5-bar mean of ``close`` (as its ``prices`` step leaves it) is above the
    20-bar one."""

    def prices(self, df):
        return df

    def indicators(self, df):
        df = self.prices(df)
        df["fast"] = df["close"].rolling(5).mean()
        df["slow"] = df["close"].rolling(20).mean()
        return df

    def entries(self, df):
        df["enter_long"] = df["fast"] > df["slow"]
        return df

    def exits(self, df):
        df["exit_long"] = df["fast"] < df["slow"]
        return df


class _ScalesInPlace(_Cross):
    calls = 0

    def prices(self, df):
        self.calls += 1
        df["close"] *= 2.0  # in place: into the column it was given
        return df


class _SetsWithLoc(_Cross):
    calls = 0

    def prices(self, df):
        self.calls += 1
        df.loc[df["close"] > df["close"].median(), "close"] = df["close"].median()
        return df


class _OnACopy(_Cross):
    """What the in-place ones mean, written on a copy."""

    def __init__(self, rule: str, **params):
        super().__init__(**params)
        self.rule = rule

    def prices(self, df):
        df = df.copy()
        if self.rule == "scale":
            df["close"] = df["close"] * 2.0
        else:
            df.loc[df["close"] > df["close"].median(), "close"] = df["close"].median()
        return df


def _series(n: int = 400) -> IndicatorCache:
    frame = walk_frame(n, seed=5)
    columns = {c: frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "volume")}
    columns["ts"] = frame["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return IndicatorCache(frame["close"].to_numpy(dtype=float), columns)


def test_the_functions_read_the_bars_read_only_and_without_a_copy() -> None:
    series = _series()
    shown = _Cross().frame_of(series, copy=False)
    for name in ("open", "high", "low", "close", "volume"):
        column = shown[name].to_numpy()
        source = series.close if name == "close" else series.columns[name]
        assert np.shares_memory(column, source) and not column.flags.writeable
    copied = _Cross().frame_of(series)
    assert not np.shares_memory(copied["close"].to_numpy(), series.close)
    assert (shown.to_numpy() == copied.to_numpy()).all() and list(shown) == list(copied)


@pytest.mark.parametrize(("writer", "rule"), [(_ScalesInPlace, "scale"), (_SetsWithLoc, "loc")])
def test_functions_writing_into_the_bars_run_on_a_copy_and_change_nothing(writer, rule) -> None:
    series = _series()
    before = {k: v.copy() for k, v in series.columns.items()}, series.close.copy()
    strategy = writer()
    table = strategy.decision_table(series)
    assert strategy.calls == 2  # refused on the bars themselves, then run on a copy
    assert table is not None and np.array_equal(
        table, _OnACopy(rule).decision_table(series), equal_nan=True
    )
    assert all((series.columns[k] == v).all() for k, v in before[0].items())
    assert (series.close == before[1]).all()


def test_a_backtest_of_a_strategy_writing_into_its_frame_fills_on_the_real_bars() -> None:
    bars = walk_frame(1500, seed=8)
    config = BacktestConfig(initial_cash=D(10_000), taker_fee_bps=D(10))
    closes = bars["close"].to_numpy(dtype=float).copy()
    writes = run_backtest(_SetsWithLoc(fraction=0.5, lot=D("0.0001")), bars, config)
    copies = run_backtest(_OnACopy("loc", fraction=0.5, lot=D("0.0001")), bars, config)
    assert writes.fills and writes.fills == copies.fills
    assert writes.final == copies.final
    assert (bars["close"].to_numpy() == closes).all()
