"""Quantum optimisation (QAOA, VQE, annealing) measured against exact and classical baselines.

Problems are small integer quadratic programs (``problems``), turned into qiskit-optimization
``QuadraticProgram``s and QUBOs (``qubo``); ``solvers`` runs one method on one problem and
``metrics`` scores its answer against every feasible solution. Pure: no Django.
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use (PEP 562): importing a light submodule (``options``, ``errors``) must not
# load qiskit, scipy and pandas through this package's public names.
_WHERE = {
    "METHODS": "solvers",
    "FeasibleSet": "metrics",
    "OptimizationError": "errors",
    "Problem": "problems",
    "Score": "metrics",
    "Solution": "solvers",
    "SolverOptions": "options",
    "feature_problem": "problems",
    "minvar_problem": "problems",
    "portfolio_problem": "problems",
    "score": "metrics",
    "solve": "solvers",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


__all__ = sorted(_WHERE)
