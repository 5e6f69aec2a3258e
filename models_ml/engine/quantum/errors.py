"""Domain errors of the optimisation engine."""

from __future__ import annotations


class OptimizationError(ValueError):
    """A problem or solver request that cannot be run (bad sizes, unknown method, no data)."""
