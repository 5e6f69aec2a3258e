"""Quantum optimisation engine: QUBO penalties, exact vs brute force, QAOA/VQE/annealing answers."""

from __future__ import annotations

import numpy as np
import pytest

from models_ml.engine.quantum import (
    FeasibleSet,
    OptimizationError,
    SolverOptions,
    feature_problem,
    minvar_problem,
    portfolio_problem,
    score,
    solve,
)
from models_ml.engine.quantum.estimation import feature_scores, return_moments
from models_ml.engine.quantum.qubo import check_penalty, to_qubo


def moments(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random expected returns and a positive-definite covariance of daily-like scale."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    return rng.normal(0.001, 0.002, n), a @ a.T / n * 1e-4 + np.eye(n) * 1e-6


def random_problems(seed: int):
    """One of each problem shape on a random small instance."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 7))
    mu, sigma = moments(n, seed)
    k = int(rng.integers(1, n))
    corr = np.abs(np.corrcoef(rng.normal(size=(n, 30))))
    return [
        portfolio_problem(mu, sigma, budget=k, risk_aversion=float(rng.uniform(0, 50))),
        portfolio_problem(mu, sigma, budget=4, lots=True, cap=0.5),
        minvar_problem(mu, sigma, budget=k),
        feature_problem(rng.uniform(0, 1, n), corr, budget=k, redundancy_weight=0.5),
    ]


@pytest.mark.parametrize("seed", range(12))
def test_every_qubo_optimum_is_feasible_and_optimal(seed):
    for problem in random_problems(seed):
        qubo = to_qubo(problem)
        x = check_penalty(problem, qubo)  # raises if any QUBO minimiser is infeasible
        best = FeasibleSet.enumerate(problem).best
        assert problem.objective(x) == pytest.approx(best, rel=1e-9, abs=1e-15), problem.kind


def test_too_small_a_penalty_is_caught():
    # The optimum of mu . w alone is "take everything": a tiny penalty lets it break the budget.
    mu, sigma = np.array([1.0, 0.9, 0.8, 0.7]), np.eye(4) * 1e-3
    problem = portfolio_problem(mu, sigma, budget=1, risk_aversion=0.0)
    with pytest.raises(OptimizationError, match="infeasible QUBO optimum"):
        check_penalty(problem, to_qubo(problem, penalty=0.01))


@pytest.mark.parametrize("seed", range(6))
def test_exact_solver_equals_brute_force(seed):
    for problem in random_problems(seed):
        solution = solve(problem, "exact")
        s = score(problem, solution.x, FeasibleSet.enumerate(problem))
        assert s.feasible and s.rank == 1 and s.approximation_ratio == pytest.approx(1.0)


def test_brute_force_counts_every_feasible_selection():
    mu, sigma = moments(6, 1)
    assert len(FeasibleSet.enumerate(portfolio_problem(mu, sigma, budget=3)).values) == 20
    lots = FeasibleSet.enumerate(portfolio_problem(mu, sigma, budget=4, lots=True, cap=0.5))
    assert np.all(lots.solutions.sum(axis=1) == 4) and np.all(lots.solutions <= 2)


@pytest.mark.parametrize("method", ["greedy", "anneal", "meanvar"])
def test_classical_and_annealing_answers_are_feasible_and_scored(method):
    mu, sigma = moments(6, 2)
    problem = portfolio_problem(mu, sigma, budget=3, risk_aversion=10.0)
    fs = FeasibleSet.enumerate(problem)
    solution = solve(problem, method, SolverOptions(seed=3))
    s = score(problem, solution.x, fs, solution.samples)
    assert s.feasible and 0.0 <= s.approximation_ratio <= 1.0 + 1e-12
    assert 1 <= s.rank <= s.feasible_count == 20


def test_meanvar_reports_continuous_weights_summing_to_one():
    mu, sigma = moments(5, 4)
    solution = solve(portfolio_problem(mu, sigma, budget=2), "meanvar")
    weights = solution.extra["continuous_weights"]
    assert sum(weights.values()) == pytest.approx(1.0) and all(w >= 0 for w in weights.values())
    assert (
        solution.extra["continuous_objective"]
        >= FeasibleSet.enumerate(portfolio_problem(mu, sigma, budget=2)).best - 1e-12
    )  # the relaxation bounds every integer choice


def test_qaoa_answer_is_feasible_with_ratio_depth_and_shots():
    mu, sigma = moments(5, 5)
    problem = portfolio_problem(mu, sigma, budget=2, risk_aversion=5.0)
    fs = FeasibleSet.enumerate(problem)
    options = SolverOptions(reps=1, shots=512, seed=11, maxiter=30)
    solution = solve(problem, "qaoa", options)
    s = score(problem, solution.x, fs, solution.samples)
    assert s.feasible and s.approximation_ratio is not None and s.rank >= 1
    assert solution.qubits == 5 and solution.depth > 0 and solution.shots == 512
    assert 0.0 < s.feasible_probability <= 1.0 and solution.evaluations <= 30
    again = solve(problem, "qaoa", options)
    assert np.array_equal(again.x, solution.x)  # seeded: the same answer every time


def test_warm_started_qaoa_and_vqe_give_feasible_answers():
    mu, sigma = moments(4, 6)
    problem = portfolio_problem(mu, sigma, budget=2, risk_aversion=5.0)
    fs = FeasibleSet.enumerate(problem)
    for method, options in [
        ("qaoa", SolverOptions(seed=1, maxiter=20, shots=256, warm_start=True)),
        ("vqe", SolverOptions(seed=1, maxiter=20, shots=256, optimizer="spsa")),
    ]:
        solution = solve(problem, method, options)
        assert score(problem, solution.x, fs).feasible, method
        assert solution.qubits == 4 and solution.depth > 0


def test_bad_requests_raise_clear_errors():
    mu, sigma = moments(4, 7)
    with pytest.raises(OptimizationError, match="budget must be between 1 and 4"):
        portfolio_problem(mu, sigma, budget=5)
    with pytest.raises(OptimizationError, match="unknown method 'magic'"):
        solve(portfolio_problem(mu, sigma, budget=2), "magic")
    with pytest.raises(OptimizationError, match="reach the return floor"):
        minvar_problem(mu, sigma, budget=2, return_floor=1.0)
    with pytest.raises(OptimizationError, match="meanvar solves portfolio or minvar"):
        solve(feature_problem(np.ones(4), np.eye(4), budget=2), "meanvar")


def test_moments_use_log_returns_and_shrinkage():
    rng = np.random.default_rng(8)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, size=(60, 3)), axis=0))
    mu, sigma = return_moments(closes)
    logret = np.diff(np.log(closes), axis=0)
    assert mu == pytest.approx(logret.mean(axis=0))
    sample = np.cov(logret, rowvar=False, bias=True)
    # Shrinkage pulls the off-diagonal towards zero, never away.
    off = ~np.eye(3, dtype=bool)
    assert np.all(np.abs(sigma[off]) <= np.abs(sample[off]) + 1e-15)
    with pytest.raises(OptimizationError, match="at least 11 bars"):
        return_moments(closes[:5])


def test_feature_scores_find_the_informative_feature():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(400, 3))
    x[:, 2] = x[:, 0] + rng.normal(0, 0.01, 400)  # a near copy of feature 0
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] + rng.normal(0, 0.05, 400)
    relevance, redundancy = feature_scores(x, y, seed=0)
    assert relevance[0] > relevance[1] > 0 and redundancy[0, 2] > 0.99
    chosen = solve(feature_problem(relevance, redundancy, budget=2), "exact").x
    assert chosen[1] == 1 and chosen[0] + chosen[2] == 1  # one of the copies, not both
