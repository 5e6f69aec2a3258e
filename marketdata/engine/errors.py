"""Domain exceptions raised by the market-data engine."""

from __future__ import annotations


class MarketDataError(Exception):
    """Base class of every market-data engine error."""


class UnsupportedTimeframe(MarketDataError, ValueError):
    """Raise when a timeframe is unknown or not allowed for an operation."""


class SimulationConfigError(MarketDataError, ValueError):
    """Raise when the simulated market is configured inconsistently."""


class QualityConfigError(MarketDataError, ValueError):
    """Raise when quality thresholds are invalid."""
