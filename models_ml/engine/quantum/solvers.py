"""One method on one problem: QAOA, VQE, annealing, exact, greedy, continuous mean-variance."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, transpile
from qiskit.circuit.library import real_amplitudes
from qiskit.primitives import StatevectorSampler
from qiskit_optimization.algorithms import (
    MinimumEigenOptimizationResult,
    MinimumEigenOptimizer,
    SlsqpOptimizer,
    WarmStartQAOAOptimizer,
)
from qiskit_optimization.minimum_eigensolvers import QAOA, NumPyMinimumEigensolver, SamplingVQE
from qiskit_optimization.optimizers import COBYLA, SPSA, Optimizer

from models_ml.engine.quantum.anneal import anneal
from models_ml.engine.quantum.classical import greedy, mean_variance
from models_ml.engine.quantum.errors import OptimizationError
from models_ml.engine.quantum.options import METHOD_NAMES, SolverOptions
from models_ml.engine.quantum.problems import Problem
from models_ml.engine.quantum.qubo import Qubo, to_qubo

# Native basis the depth is counted in: what a superconducting device would run.
_BASIS = ["cx", "rz", "sx", "x"]
# The exact eigensolver diagonalises a 2**n operator: past this it is no longer "exact, cheaply".
MAX_EXACT_QUBITS = 20


@dataclass(frozen=True)
class Solution:
    """A method's answer in original variables, with what it cost."""

    method: str
    x: np.ndarray
    seconds: float
    qubits: int | None = None
    depth: int | None = None
    shots: int | None = None
    evaluations: int | None = None
    samples: tuple[np.ndarray, np.ndarray] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        """Return the JSON-ready cost figures of this run."""
        return {
            "method": self.method,
            "seconds": self.seconds,
            "qubits": self.qubits,
            "depth": self.depth,
            "shots": self.shots,
            "evaluations": self.evaluations,
            **self.extra,
        }


def _optimizer(options: SolverOptions) -> Optimizer:
    """Return the seeded classical optimiser of the variational loop."""
    if options.optimizer == "spsa":
        return SPSA(maxiter=options.maxiter)
    return COBYLA(maxiter=options.maxiter)


def _sampler(options: SolverOptions) -> StatevectorSampler:
    """Return the reference sampler with the run's shots and seed."""
    return StatevectorSampler(default_shots=options.shots, seed=options.seed)


def _depth(circuit: QuantumCircuit | None, seed: int) -> int | None:
    """Return the circuit's depth in the native basis."""
    if circuit is None:
        return None
    bound = circuit.assign_parameters([0.1] * circuit.num_parameters)
    return transpile(bound, basis_gates=_BASIS, optimization_level=1, seed_transpiler=seed).depth()


def _samples(result: MinimumEigenOptimizationResult) -> tuple[np.ndarray, np.ndarray]:
    """Return the sampled original solutions and their probabilities."""
    xs = np.array([s.x for s in result.samples], dtype=float)
    return xs, np.array([s.probability for s in result.samples], dtype=float)


def _variational(
    method: str, problem: Problem, qubo: Qubo, options: SolverOptions
) -> tuple[MinimumEigenOptimizationResult, Any]:
    """Run QAOA (optionally warm-started) or SamplingVQE; return the result and the solver."""
    rng = np.random.default_rng(options.seed)
    if method == "qaoa":
        # Small angles start near the uniform superposition, where COBYLA moves steadily.
        point = rng.uniform(0.0, 0.5, 2 * options.reps)
        solver = QAOA(
            _sampler(options), _optimizer(options), reps=options.reps, initial_point=point
        )
        if options.warm_start:
            algorithm = WarmStartQAOAOptimizer(
                pre_solver=SlsqpOptimizer(),
                relax_for_pre_solver=True,
                qaoa=solver,
                penalty=options.penalty,
            )
            return algorithm.solve(qubo.program), solver
    else:
        ansatz = real_amplitudes(qubo.qubits, reps=options.reps, entanglement="linear")
        point = rng.uniform(-np.pi, np.pi, ansatz.num_parameters)
        solver = SamplingVQE(_sampler(options), ansatz, _optimizer(options), initial_point=point)
    algorithm = MinimumEigenOptimizer(solver, penalty=options.penalty)
    return algorithm.solve(qubo.program), solver


def _solve_variational(
    method: str, problem: Problem, qubo: Qubo, options: SolverOptions
) -> Solution:
    """Return the best sampled feasible answer of QAOA or VQE."""
    start = time.perf_counter()
    result, _ = _variational(method, problem, qubo, options)
    seconds = time.perf_counter() - start
    xs, probs = _samples(result)
    ok = np.asarray(problem.feasible(xs), dtype=bool)
    if ok.any():
        values = np.asarray(problem.objective(xs[ok]), dtype=float)
        best = int(np.argmax(values) if problem.sense == "max" else np.argmin(values))
        x = xs[ok][best]
    else:
        x = np.asarray(result.x, dtype=float)
    eigen = getattr(result, "min_eigen_solver_result", None)
    circuit = getattr(eigen, "optimal_circuit", None)
    return Solution(
        method=method,
        x=x,
        seconds=seconds,
        qubits=qubo.qubits,
        depth=_depth(circuit, options.seed),
        shots=options.shots,
        evaluations=getattr(eigen, "cost_function_evals", None),
        samples=(xs, probs),
        extra={"reps": options.reps, "warm_start": options.warm_start, "penalty": qubo.penalty},
    )


def _solve_exact(problem: Problem, qubo: Qubo, options: SolverOptions) -> Solution:
    """Return the QUBO's ground state found by exact diagonalisation."""
    if qubo.qubits > MAX_EXACT_QUBITS:
        raise OptimizationError(f"exact: {qubo.qubits} qubits exceed {MAX_EXACT_QUBITS}")
    start = time.perf_counter()
    result = MinimumEigenOptimizer(NumPyMinimumEigensolver(), penalty=options.penalty).solve(
        qubo.program
    )
    return Solution(
        method="exact",
        x=np.asarray(result.x, dtype=float),
        seconds=time.perf_counter() - start,
        qubits=qubo.qubits,
        extra={"penalty": qubo.penalty},
    )


def _solve_anneal(problem: Problem, qubo: Qubo, options: SolverOptions) -> Solution:
    """Return the best feasible annealed answer."""
    start = time.perf_counter()
    bits, counts = anneal(
        qubo, seed=options.seed, reads=options.num_reads, sweeps=options.num_sweeps
    )
    xs = np.array([qubo.decode(b) for b in bits])
    probs = counts / counts.sum()
    ok = np.asarray(problem.feasible(xs), dtype=bool)
    pool = xs[ok] if ok.any() else xs
    values = np.asarray(problem.objective(pool), dtype=float)
    x = pool[int(np.argmax(values) if problem.sense == "max" else np.argmin(values))]
    return Solution(
        method="anneal",
        x=x,
        seconds=time.perf_counter() - start,
        qubits=qubo.qubits,
        shots=options.num_reads,
        samples=(xs, probs),
        extra={"num_sweeps": options.num_sweeps, "penalty": qubo.penalty},
    )


def _solve_greedy(problem: Problem, qubo: Qubo, options: SolverOptions) -> Solution:
    start = time.perf_counter()
    x = greedy(problem)
    return Solution(method="greedy", x=x, seconds=time.perf_counter() - start)


def _solve_meanvar(problem: Problem, qubo: Qubo, options: SolverOptions) -> Solution:
    start = time.perf_counter()
    x, weights, value = mean_variance(problem)
    return Solution(
        method="meanvar",
        x=x,
        seconds=time.perf_counter() - start,
        extra={
            "continuous_weights": dict(zip(problem.labels, weights.tolist(), strict=True)),
            "continuous_objective": value,
        },
    )


def _qaoa(problem: Problem, qubo: Qubo, options: SolverOptions) -> Solution:
    return _solve_variational("qaoa", problem, qubo, options)


def _vqe(problem: Problem, qubo: Qubo, options: SolverOptions) -> Solution:
    return _solve_variational("vqe", problem, qubo, options)


METHODS: dict[str, Callable[[Problem, Qubo, SolverOptions], Solution]] = {
    "qaoa": _qaoa,
    "vqe": _vqe,
    "anneal": _solve_anneal,
    "exact": _solve_exact,
    "greedy": _solve_greedy,
    "meanvar": _solve_meanvar,
}
assert tuple(METHODS) == METHOD_NAMES, "options.METHOD_NAMES must name every method"


def solve(
    problem: Problem, method: str, options: SolverOptions | None = None, qubo: Qubo | None = None
) -> Solution:
    """Solve ``problem`` with ``method``; ``qubo`` may be passed to reuse a conversion."""
    options = options or SolverOptions()
    options.check()
    try:
        run = METHODS[method]
    except KeyError:
        raise OptimizationError(
            f"unknown method {method!r}; known: {', '.join(sorted(METHODS))}"
        ) from None
    return run(problem, qubo or to_qubo(problem, options.penalty), options)
