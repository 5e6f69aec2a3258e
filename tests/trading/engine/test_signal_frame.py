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
from trading.strategy_templates import SIGNAL


def _template_class() -> type:
    """Return the class ``manage.py strategy new NAME --style signal`` writes: an SMA cross."""
    namespace: dict = {}
    exec(compile(SIGNAL.format(name="TemplateSma"), "<signal template>", "exec"), namespace)
    return namespace["TemplateSma"]


_Template = _template_class()


def _scale_in_place(df):
    df["close"] *= 2.0  # in place: into the column it was given
    return df


def _set_with_loc(df):
    df.loc[df["close"] > df["close"].median(), "close"] = df["close"].median()
    return df


def _on_a_copy(rule):
    """What an in-place rule means: the same rule on a copy of the bars."""
    return lambda df: rule(df.copy())


class _Cross(_Template):
    """The template's SMA cross on ``close`` as a ``prices`` step leaves it (counted)."""

    # Declared again: SignalStrategy.__init_subclass__ keeps only the defaults a class declares
    # itself, so a subclass that declares none would lose fast and slow.
    parameters = _Template.parameters

    def __init__(self, prices=None, **params):
        super().__init__(**params)
        self.prices = prices or (lambda df: df)
        self.calls = 0

    def indicators(self, df):
        self.calls += 1
        return super().indicators(self.prices(df))


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


@pytest.mark.parametrize("writer", [_scale_in_place, _set_with_loc])
def test_functions_writing_into_the_bars_run_on_a_copy_and_change_nothing(writer) -> None:
    series = _series()
    before = {k: v.copy() for k, v in series.columns.items()}, series.close.copy()
    strategy = _Cross(writer)
    table = strategy.decision_table(series)
    assert strategy.calls == 2  # refused on the bars themselves, then run on a copy
    assert table is not None and np.array_equal(
        table, _Cross(_on_a_copy(writer)).decision_table(series), equal_nan=True
    )
    assert all((series.columns[k] == v).all() for k, v in before[0].items())
    assert (series.close == before[1]).all()


def test_a_backtest_of_a_strategy_writing_into_its_frame_fills_on_the_real_bars() -> None:
    bars = walk_frame(1500, seed=8)
    config = BacktestConfig(initial_cash=D(10_000), taker_fee_bps=D(10))
    closes = bars["close"].to_numpy(dtype=float).copy()
    writes = run_backtest(_Cross(_set_with_loc, fraction=0.5, lot=D("0.0001")), bars, config)
    copies = run_backtest(_Cross(_on_a_copy(_set_with_loc), fraction=0.5, lot=D("0.0001")),
                          bars, config)  # fmt: skip
    assert writes.fills and writes.fills == copies.fills
    assert writes.final == copies.final
    assert (bars["close"].to_numpy() == closes).all()


def test_a_subclass_keeps_its_parents_parameters():
    """``class B(A): pass`` had only fraction and lot: A's fast/slow were a KeyError in rules."""
    from trading.engine.errors import StrategyConfigError

    class Child(_Template):
        pass

    class Grandchild(Child):
        default_params = {"fraction": 0.05}

    assert Child().params["fast"] == 10 and Child().params["slow"] == 30
    assert Child(fast=4).params["fast"] == 4
    assert Grandchild().params == {**Child().params, "fraction": 0.05}
    with pytest.raises(StrategyConfigError, match="unknown parameter"):
        Child(bogus=1)


def test_the_frames_times_are_the_bars_own_as_utc_and_a_copy_of_them() -> None:
    # frame_of reads the int64 stamps as datetimes through a view; the column is a copy (a
    # function shifting its times in place leaves the backtest's bars as they were).
    series = _series()
    stamps = series.columns["ts"].copy()
    for copy in (False, True):
        frame = _Cross().frame_of(series, copy=copy)
        assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
        assert frame["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64).tolist() == (
            stamps.tolist()
        )
        assert not np.shares_memory(frame["ts"].array.asi8, series.columns["ts"])
        frame["ts"] += np.timedelta64(1, "h")
        assert (series.columns["ts"] == stamps).all()
