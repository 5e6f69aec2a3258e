"""Domain exceptions raised by the backtesting engine."""

from __future__ import annotations


class BacktestError(Exception):
    """Base class of every backtesting-engine error."""


class BacktestConfigError(BacktestError, ValueError):
    """Raise when a backtest, fill model, search space or report is configured inconsistently."""


class BacktestDataError(BacktestError, ValueError):
    """Raise when market data handed to a backtest is missing columns, unsorted or empty."""


class UnsupportedStrategyError(BacktestError, ValueError):
    """Raise when the vectorised path is asked for a strategy it does not implement."""
