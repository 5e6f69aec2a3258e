"""Classical references: greedy unit-by-unit selection and the continuous mean-variance optimum."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from models_ml.engine.quantum.errors import OptimizationError
from models_ml.engine.quantum.problems import MAXIMIZE, Problem


def _floor_reachable(problem: Problem, x: np.ndarray) -> bool:
    """Return True if the units still to place can lift ``x`` to the return floor."""
    floor = problem.floor
    if floor is None:
        return True
    left = problem.budget - int(x.sum())
    room = np.asarray(problem.caps) - x
    gains = np.repeat(floor.coefficients, room.astype(int))
    best_extra = np.sort(gains)[::-1][:left].sum()
    return float(x @ floor.coefficients + best_extra) >= floor.rhs


def greedy(problem: Problem) -> np.ndarray:
    """Add one unit at a time where it improves the objective most, never losing the floor."""
    x = np.zeros(problem.n)
    caps = np.asarray(problem.caps)
    sign = 1.0 if problem.sense == MAXIMIZE else -1.0
    for _ in range(problem.budget):
        best, best_value = None, -np.inf
        for i in np.flatnonzero(x < caps):
            x[i] += 1
            value = sign * float(problem.objective(x))
            if value > best_value and _floor_reachable(problem, x):
                best, best_value = i, value
            x[i] -= 1
        if best is None:
            raise OptimizationError("greedy: no step keeps the problem feasible")
        x[best] += 1
    return x


def _round_to_lots(problem: Problem, weights: np.ndarray) -> np.ndarray:
    """Return the feasible integer allocation nearest the continuous weights (largest remainder)."""
    target = weights * problem.budget
    x = np.minimum(np.floor(target + 1e-9), problem.caps)
    for i in np.argsort(-(target - x), kind="stable"):
        if x.sum() >= problem.budget:
            break
        if x[i] < problem.caps[i]:
            x[i] += 1
    return x


def mean_variance(problem: Problem) -> tuple[np.ndarray, np.ndarray, float]:
    """Return the rounded allocation, the continuous optimal weights and their objective.

    Weights ``w`` sum to 1 with ``0 <= w_i <= cap_i / budget``: the convex relaxation of the
    integer problem, solved with SLSQP. Only portfolio and minimum-variance problems have one.
    """
    if problem.kind not in ("portfolio", "minvar"):
        raise OptimizationError(f"meanvar solves portfolio or minvar problems, not {problem.kind}")
    b = problem.budget
    # In weights: x = b * w, so linear . x + x'Qx = b * linear . w + b^2 * w'Qw.
    lin, quad = problem.linear * b, problem.quadratic * b * b
    sign = -1.0 if problem.sense == MAXIMIZE else 1.0

    def cost(w: np.ndarray) -> float:
        return sign * float(lin @ w + w @ quad @ w)

    def grad(w: np.ndarray) -> np.ndarray:
        return sign * (lin + (quad + quad.T) @ w)

    constraints = [{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}]
    if problem.floor is not None:
        mu = np.asarray(problem.meta["mu"])
        floor = problem.meta["return_floor"]
        constraints.append({"type": "ineq", "fun": lambda w: mu @ w - floor, "jac": lambda w: mu})
    bounds = [(0.0, cap / b) for cap in problem.caps]
    start = np.full(problem.n, 1.0 / problem.n)
    result = minimize(
        cost,
        start,
        jac=grad,
        bounds=bounds,
        constraints=constraints,
        method="SLSQP",
        options={"maxiter": 500, "ftol": 1e-12},
    )
    if not result.success:
        raise OptimizationError(f"meanvar: SLSQP failed: {result.message}")
    weights = np.clip(result.x, 0.0, None)
    return _round_to_lots(problem, weights), weights, sign * float(result.fun)
