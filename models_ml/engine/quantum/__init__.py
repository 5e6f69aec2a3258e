"""Quantum optimisation (QAOA, VQE, annealing) measured against exact and classical baselines.

Problems are small integer quadratic programs (``problems``), turned into qiskit-optimization
``QuadraticProgram``s and QUBOs (``qubo``); ``solvers`` runs one method on one problem and
``metrics`` scores its answer against every feasible solution. Pure: no Django.
"""

from __future__ import annotations

from models_ml.engine.quantum.errors import OptimizationError
from models_ml.engine.quantum.metrics import FeasibleSet, Score, score
from models_ml.engine.quantum.problems import (
    Problem,
    feature_problem,
    minvar_problem,
    portfolio_problem,
)
from models_ml.engine.quantum.solvers import METHODS, Solution, SolverOptions, solve

__all__ = [
    "METHODS",
    "FeasibleSet",
    "OptimizationError",
    "Problem",
    "Score",
    "Solution",
    "SolverOptions",
    "feature_problem",
    "minvar_problem",
    "portfolio_problem",
    "score",
    "solve",
]
