"""Truncation catches strategies and signals that use data from the future."""

from __future__ import annotations

from typing import Any

import pandas as pd

from backtesting.engine.lookahead import check_signal_lookahead, check_strategy_lookahead
from marketdata.engine.events import Bar
from tests.backtesting.engine.helpers import walk_frame
from trading.engine.strategies import create_strategy
from trading.engine.strategy import Strategy, StrategyContext

BARS = walk_frame(400, seed=21)


class _Precomputed(Strategy):
    """Trades on a signal precomputed over the whole frame it is given."""

    default_params: dict[str, Any] = {}
    center = False

    def __init__(self, data: pd.DataFrame) -> None:
        super().__init__()
        close = data.set_index("ts")["close"]
        mean = close.rolling(21, center=self.center, min_periods=1).mean()
        self._above = (close > mean).to_dict()

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        target = 1 if self._above[pd.Timestamp(bar.ts)] else 0
        ctx.target_position(bar.symbol, target, signal=self.name)


class Clairvoyant(_Precomputed):
    """Compares the close with a *centred* moving average: 10 bars of the future leak in."""

    name = "clairvoyant"
    center = True


class Honest(_Precomputed):
    """The same idea with a trailing average: precomputed, but causal."""

    name = "honest"


def test_a_peeking_strategy_is_reported_by_name() -> None:
    report = check_strategy_lookahead(Clairvoyant, BARS, n_points=4, seed=1)
    assert not report.ok
    assert report.name == "Clairvoyant"
    assert report.message().startswith("Clairvoyant peeks ahead")
    first = report.divergences[0]
    assert first.full != first.truncated


def test_causal_strategies_pass() -> None:
    assert check_strategy_lookahead(Honest, BARS, n_points=4, seed=1).ok
    report = check_strategy_lookahead(
        lambda data: create_strategy("sma_cross", fast=5, slow=20), BARS, n_points=4, name="sma"
    )
    assert report.ok and len(report.cuts) == 4
    assert "no look-ahead" in report.message()


def test_signal_functions_are_checked_row_by_row() -> None:
    def tomorrow_up(frame: pd.DataFrame) -> pd.Series:
        return (frame["close"].shift(-1) > frame["close"]).astype(float)

    def trailing(frame: pd.DataFrame) -> pd.Series:
        return frame["close"].rolling(5).mean()

    bad = check_signal_lookahead(tomorrow_up, BARS, n_points=5, seed=3)
    assert not bad.ok and bad.name == "tomorrow_up"
    assert check_signal_lookahead(trailing, BARS, n_points=5, seed=3).ok
