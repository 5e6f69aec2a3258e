"""Every feasible solution of a small problem, and how an answer ranks among them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from models_ml.engine.quantum.errors import OptimizationError
from models_ml.engine.quantum.problems import MAXIMIZE, Problem

# Enumerating is the reference for every ratio and rank; beyond this it stops being cheap.
MAX_FEASIBLE = 2_000_000
_TOL = 1e-12


def _compositions(caps: tuple[int, ...], budget: int) -> Iterator[tuple[int, ...]]:
    """Yield every integer vector with ``0 <= x_i <= caps[i]`` summing to ``budget``."""
    if not caps:
        if budget == 0:
            yield ()
        return
    room = sum(caps[1:])
    for first in range(max(0, budget - room), min(caps[0], budget) + 1):
        for rest in _compositions(caps[1:], budget - first):
            yield (first, *rest)


@dataclass(frozen=True)
class FeasibleSet:
    """All feasible solutions of a problem with their objectives, best first."""

    solutions: np.ndarray
    values: np.ndarray

    @classmethod
    def enumerate(cls, problem: Problem) -> FeasibleSet:
        """Enumerate the feasible solutions of ``problem`` (brute force)."""
        rows = []
        for i, row in enumerate(_compositions(problem.caps, problem.budget)):
            if i >= MAX_FEASIBLE:
                raise OptimizationError(f"more than {MAX_FEASIBLE} candidate solutions")
            rows.append(row)
        x = np.array(rows, dtype=float).reshape(-1, problem.n)
        x = x[problem.feasible(x)]
        if not len(x):
            raise OptimizationError("the problem has no feasible solution")
        values = np.asarray(problem.objective(x), dtype=float)
        order = np.argsort(-values if problem.sense == MAXIMIZE else values, kind="stable")
        return cls(solutions=x[order], values=values[order])

    @property
    def best(self) -> float:
        """Return the optimal objective."""
        return float(self.values[0])

    @property
    def worst(self) -> float:
        """Return the worst feasible objective."""
        return float(self.values[-1])

    def ratio(self, value: float) -> float:
        """Return ``(value - worst) / (best - worst)``: 1 at the optimum, 0 at the worst."""
        span = self.best - self.worst
        return 1.0 if abs(span) < _TOL else (value - self.worst) / span

    def rank(self, value: float, sense: str) -> int:
        """Return 1 + the number of feasible solutions strictly better than ``value``."""
        tol = _TOL * max(1.0, abs(self.best))
        if sense == MAXIMIZE:
            return 1 + int(np.sum(self.values > value + tol))
        return 1 + int(np.sum(self.values < value - tol))


@dataclass(frozen=True, slots=True)
class Score:
    """An answer measured against the exact optimum."""

    objective: float
    feasible: bool
    optimum: float
    approximation_ratio: float | None
    rank: int | None
    feasible_count: int
    optimal_probability: float | None = None
    feasible_probability: float | None = None

    def as_dict(self) -> dict[str, float | int | bool | None]:
        """Return the score as JSON-ready values."""
        return {name: getattr(self, name) for name in self.__slots__}


def score(
    problem: Problem,
    x: np.ndarray,
    feasible_set: FeasibleSet,
    samples: tuple[np.ndarray, np.ndarray] | None = None,
) -> Score:
    """Score answer ``x`` (and, when given, the sampled distribution) against the optimum."""
    value = float(problem.objective(x))
    feasible = bool(problem.feasible(x))
    p_opt = p_feas = None
    if samples is not None and len(samples[0]):
        xs, probs = samples
        ok = np.asarray(problem.feasible(xs), dtype=bool)
        values = np.asarray(problem.objective(xs), dtype=float)
        optimal = ok & (np.abs(values - feasible_set.best) <= 1e-9 * max(1, abs(feasible_set.best)))
        p_feas, p_opt = float(probs[ok].sum()), float(probs[optimal].sum())
    return Score(
        objective=value,
        feasible=feasible,
        optimum=feasible_set.best,
        approximation_ratio=feasible_set.ratio(value) if feasible else None,
        rank=feasible_set.rank(value, problem.sense) if feasible else None,
        feasible_count=len(feasible_set.values),
        optimal_probability=p_opt,
        feasible_probability=p_feas,
    )
