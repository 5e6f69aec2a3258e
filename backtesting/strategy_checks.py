"""Look-ahead checks of a strategy by name (``backtest --lookahead-check``, ``strategy check``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from backtesting.engine.lookahead import (
    LookaheadReport,
    check_signal_recursive,
    check_strategy_lookahead,
)
from backtesting.engine.runner import BacktestConfig
from trading.engine.signal_strategy import SignalStrategy
from trading.engine.strategies import strategy_class


def lookahead_reports(
    strategy: str,
    params: Mapping[str, Any],
    bars: pd.DataFrame,
    *,
    n_points: int = 5,
    seed: int = 0,
) -> list[LookaheadReport]:
    """Return the truncation check and, for a signal-style strategy, the recursive check."""
    cls = strategy_class(strategy)
    config = BacktestConfig()
    reports = [
        check_strategy_lookahead(
            lambda _frame: cls(**params), bars, config, n_points=n_points, seed=seed,
            name=f"{cls.name} (truncation)",
        )
    ]
    if issubclass(cls, SignalStrategy):
        report = check_signal_recursive(cls(**params), bars, n_points=n_points, seed=seed)
        reports.append(
            LookaheadReport(f"{cls.name} (recursive)", report.cuts, report.divergences)
        )
    return reports
