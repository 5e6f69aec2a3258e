"""Target weights from recent closes: the bridge a rebalancing strategy re-optimises through."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models_ml.engine.quantum.errors import OptimizationError
from models_ml.engine.quantum.estimation import return_moments
from models_ml.engine.quantum.problems import portfolio_problem
from models_ml.engine.quantum.solvers import SolverOptions, solve

# Variational circuits re-run inside a backtest: keep them small and quick.
_REBALANCE_OPTIONS = {"shots": 512, "maxiter": 50}


def optimal_weights(
    symbols: Sequence[str],
    closes: Sequence[Sequence[float]],
    *,
    method: str,
    k: int,
    risk_aversion: float = 1.0,
    seed: int = 0,
) -> dict[str, float]:
    """Return weights (summing to 1) of the k-of-n portfolio ``method`` chooses from ``closes``."""
    if method == "equal":
        return {s: 1.0 / len(symbols) for s in symbols}
    length = min(len(c) for c in closes)
    matrix = np.column_stack([np.asarray(c[-length:], dtype=float) for c in closes])
    mu, sigma = return_moments(matrix)
    problem = portfolio_problem(
        mu, sigma, budget=k, risk_aversion=risk_aversion, labels=tuple(symbols)
    )
    solution = solve(problem, method, SolverOptions(seed=seed, **_REBALANCE_OPTIONS))
    if method == "meanvar":
        # The continuous optimum is the mean-variance portfolio itself, not its rounding.
        weights = solution.extra["continuous_weights"]
        return {s: w for s, w in weights.items() if w > 1e-9}
    if not problem.feasible(solution.x):
        raise OptimizationError(f"{method} found no feasible portfolio")
    return problem.weights(solution.x)
