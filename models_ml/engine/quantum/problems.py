"""Integer quadratic selection problems: portfolio, minimum variance and feature selection.

Every problem has the same shape, which keeps exact enumeration, greedy and the QUBO honest with
each other: integers ``0 <= x_i <= cap_i`` with ``sum(x) == budget`` (and optionally an integer
floor ``a . x >= rhs``), scoring ``linear . x + x' Q x`` to be maximised or minimised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit_optimization import QuadraticProgram

from models_ml.engine.quantum.errors import OptimizationError

MAXIMIZE, MINIMIZE = "max", "min"
# How finely a minimum-variance return floor is discretised: more levels, more slack qubits.
FLOOR_LEVELS = 7


@dataclass(frozen=True, slots=True)
class Floor:
    """An integer linear floor ``coefficients . x >= rhs``."""

    coefficients: np.ndarray
    rhs: int


@dataclass(frozen=True)
class Problem:
    """One selection problem, in original (unscaled) units."""

    kind: str
    labels: tuple[str, ...]
    linear: np.ndarray
    quadratic: np.ndarray
    sense: str
    budget: int
    caps: tuple[int, ...]
    floor: Floor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Return the number of decision variables."""
        return len(self.labels)

    @property
    def scale(self) -> float:
        """Return the factor that brings the largest coefficient to 1 (for the circuits)."""
        top = max(np.abs(self.linear).max(initial=0.0), np.abs(self.quadratic).max(initial=0.0))
        return 1.0 / top if top > 0 else 1.0

    def objective(self, x: np.ndarray) -> np.ndarray | float:
        """Return the objective of one solution (1-d) or of each row of a 2-d array."""
        x = np.asarray(x, dtype=float)
        return x @ self.linear + np.einsum("...i,ij,...j->...", x, self.quadratic, x)

    def feasible(self, x: np.ndarray) -> np.ndarray | bool:
        """Return whether a solution (or each row) satisfies bounds, budget and floor."""
        x = np.asarray(x, dtype=float)
        rounded = np.all(np.abs(x - np.round(x)) < 1e-9, axis=-1)
        bounds = np.all((x >= 0) & (x <= np.asarray(self.caps)), axis=-1)
        ok = rounded & bounds & (np.abs(x.sum(axis=-1) - self.budget) < 1e-9)
        if self.floor is not None:
            ok = ok & (x @ self.floor.coefficients >= self.floor.rhs - 1e-9)
        return ok

    def better(self, a: float, b: float) -> bool:
        """Return True if objective ``a`` is strictly better than ``b``."""
        return a > b if self.sense == MAXIMIZE else a < b

    def weights(self, x: np.ndarray) -> dict[str, float]:
        """Return the chosen labels with their share of the budget."""
        return {
            label: float(v) / self.budget
            for label, v in zip(self.labels, np.asarray(x), strict=True)
            if v > 0.5
        }

    def quadratic_program(self) -> QuadraticProgram:
        """Return the problem as a qiskit-optimization program, coefficients scaled to <= 1."""
        qp = QuadraticProgram(self.kind)
        names = [f"x{i}" for i in range(self.n)]
        for name, cap in zip(names, self.caps, strict=True):
            if cap == 1:
                qp.binary_var(name)
            else:
                qp.integer_var(lowerbound=0, upperbound=cap, name=name)
        s = self.scale
        build = qp.maximize if self.sense == MAXIMIZE else qp.minimize
        build(linear=self.linear * s, quadratic=self.quadratic * s)
        qp.linear_constraint(linear=[1] * self.n, sense="==", rhs=self.budget, name="budget")
        if self.floor is not None:
            qp.linear_constraint(
                linear=self.floor.coefficients.astype(int).tolist(),
                sense=">=",
                rhs=self.floor.rhs,
                name="floor",
            )
        return qp


def _check_moments(mu: np.ndarray, sigma: np.ndarray, budget: int, caps: tuple[int, ...]) -> None:
    """Raise OptimizationError unless mu/sigma/budget/caps describe a solvable problem."""
    n = len(mu)
    if n < 2:
        raise OptimizationError("need at least 2 assets")
    if sigma.shape != (n, n):
        raise OptimizationError(f"covariance must be {n}x{n}, got {sigma.shape}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise OptimizationError("expected returns and covariance must be finite")
    if budget < 1 or budget > sum(caps):
        raise OptimizationError(f"budget must be between 1 and {sum(caps)}, got {budget}")


def _caps(n: int, budget: int, cap: float | None, lots: bool) -> tuple[int, ...]:
    """Return per-asset lot caps: binary selection, or ``floor(cap * budget)`` lots each."""
    if not lots:
        return (1,) * n
    if cap is None or not 0 < cap <= 1:
        raise OptimizationError(f"cap must be a weight in (0, 1], got {cap}")
    per_asset = math.floor(cap * budget + 1e-9)
    if per_asset < 1:
        raise OptimizationError(f"cap {cap} allows no lot of a budget of {budget}")
    return (per_asset,) * n


def portfolio_problem(
    mu: np.ndarray,
    sigma: np.ndarray,
    *,
    budget: int,
    risk_aversion: float = 1.0,
    labels: tuple[str, ...] | None = None,
    cap: float | None = None,
    lots: bool = False,
) -> Problem:
    """Choose ``budget`` of n assets (or ``budget`` lots, at most ``cap`` weight each).

    Maximises ``mu . w - risk_aversion * w' Sigma w`` with ``w = x / budget``.
    """
    mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
    caps = _caps(len(mu), budget, cap, lots)
    _check_moments(mu, sigma, budget, caps)
    if risk_aversion < 0:
        raise OptimizationError("risk aversion must be >= 0")
    return Problem(
        kind="portfolio",
        labels=labels or tuple(f"a{i}" for i in range(len(mu))),
        linear=mu / budget,
        quadratic=-risk_aversion * sigma / budget**2,
        sense=MAXIMIZE,
        budget=budget,
        caps=caps,
        meta={"mu": mu.tolist(), "sigma": sigma.tolist(), "risk_aversion": risk_aversion},
    )


def minvar_problem(
    mu: np.ndarray,
    sigma: np.ndarray,
    *,
    budget: int,
    return_floor: float | None = None,
    labels: tuple[str, ...] | None = None,
) -> Problem:
    """Choose ``budget`` of n assets minimising variance with expected return >= the floor.

    The floor defaults to the mean of ``mu`` (what holding everything equally earns) and is
    discretised into ``FLOOR_LEVELS`` integer return units so the QUBO needs few slack qubits.
    """
    mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
    caps = (1,) * len(mu)
    _check_moments(mu, sigma, budget, caps)
    floor = float(np.mean(mu)) if return_floor is None else float(return_floor)
    unit = float(np.abs(mu).max()) / FLOOR_LEVELS or 1.0
    coefficients = np.round(mu / unit).astype(int)
    rhs = math.ceil(floor * budget / unit - 1e-9)
    if np.sort(coefficients)[::-1][:budget].sum() < rhs:
        raise OptimizationError(
            f"no {budget} assets reach the return floor {floor:.6g} (best mean is "
            f"{np.sort(mu)[::-1][:budget].mean():.6g})"
        )
    return Problem(
        kind="minvar",
        labels=labels or tuple(f"a{i}" for i in range(len(mu))),
        linear=np.zeros(len(mu)),
        quadratic=sigma / budget**2,
        sense=MINIMIZE,
        budget=budget,
        caps=caps,
        floor=Floor(coefficients=coefficients, rhs=rhs),
        meta={"mu": mu.tolist(), "sigma": sigma.tolist(), "return_floor": floor, "unit": unit},
    )


def feature_problem(
    relevance: np.ndarray,
    redundancy: np.ndarray,
    *,
    budget: int,
    redundancy_weight: float = 1.0,
    labels: tuple[str, ...] | None = None,
) -> Problem:
    """Choose ``budget`` features maximising relevance minus pairwise redundancy (mRMR QUBO)."""
    relevance = np.asarray(relevance, dtype=float)
    redundancy = np.asarray(redundancy, dtype=float)
    n = len(relevance)
    if n < 2 or redundancy.shape != (n, n):
        raise OptimizationError(f"need >= 2 features and a {n}x{n} redundancy matrix")
    if budget < 1 or budget > n:
        raise OptimizationError(f"budget must be between 1 and {n}, got {budget}")
    if not (np.all(np.isfinite(relevance)) and np.all(np.isfinite(redundancy))):
        raise OptimizationError("relevance and redundancy must be finite")
    # Relevance in units of the best feature's: a redundancy weight of 1 then means a perfect
    # copy of the best feature adds nothing. Only pairs count: nothing is redundant with itself.
    top = relevance.max()
    off_diagonal = redundancy - np.diag(np.diag(redundancy))
    return Problem(
        kind="features",
        labels=labels or tuple(f"f{i}" for i in range(n)),
        linear=relevance / top if top > 0 else relevance,
        quadratic=-redundancy_weight * np.triu(off_diagonal, 1),
        sense=MAXIMIZE,
        budget=budget,
        caps=(1,) * n,
        meta={"redundancy_weight": redundancy_weight},
    )
