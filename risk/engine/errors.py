"""Domain exceptions raised by the risk engine."""

from __future__ import annotations


class RiskEngineError(Exception):
    """Base class for every risk-engine error."""


class RiskInputError(RiskEngineError, ValueError):
    """An input to the risk engine is out of its domain (NaN return, non-positive price, ...)."""


class InvalidLimitError(RiskEngineError, ValueError):
    """A limit specification is malformed (unknown kind, negative value, missing scope)."""


class SizingError(RiskEngineError, ValueError):
    """A sizing input is out of its domain (non-positive price, win rate outside [0, 1], ...)."""


class StopConfigError(RiskEngineError, ValueError):
    """A stop rule is malformed or a position is unknown to the stop manager."""


class InsufficientDataError(RiskEngineError, ValueError):
    """A statistic needs more observations than were given."""


class RiskClockError(RiskEngineError):
    """A check needs the current time but neither the order nor an injected clock gives it."""


class IllegalTransitionError(RiskEngineError):
    """A trading-state transition is not allowed (e.g. leaving HALTED without an operator)."""
