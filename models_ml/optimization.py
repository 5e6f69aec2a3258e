"""Optimisation runs: build a selection problem from stored bars, solve it, record it beside the
exact optimum and the greedy heuristic (one ``OptimizationRun`` row per run)."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from marketdata.engine.events import TIMEFRAME_SECONDS
from marketdata.services import DATA_SOURCES, MarketDataUnavailable, bars_load
from models_ml.choices import OptimizationKind, RunStatus
from models_ml.engine.datasets import make_targets
from models_ml.engine.errors import MLEngineError
from models_ml.engine.features import FeatureSet
from models_ml.engine.quantum import (
    METHODS,
    FeasibleSet,
    OptimizationError,
    Problem,
    SolverOptions,
    feature_problem,
    minvar_problem,
    portfolio_problem,
    score,
    solve,
)
from models_ml.engine.quantum.estimation import feature_scores, return_moments
from models_ml.engine.quantum.metrics import MAX_FEASIBLE
from models_ml.engine.quantum.options import PROBLEMS
from models_ml.engine.quantum.qubo import to_qubo
from models_ml.models import MLModel, OptimizationRun, Prediction
from models_ml.services import json_ready
from rrr_site import run_owner

KINDS = {"qaoa": OptimizationKind.QAOA, "vqe": OptimizationKind.VQE}
KINDS["anneal"] = OptimizationKind.ANNEALING
# Variational circuits are simulated on a statevector: 2**qubits amplitudes per evaluation.
MAX_CIRCUIT_QUBITS = 20
SIMULATION_SEED = 42


class OptimizationRequestError(ValueError):
    """The request cannot be run as given (one clear message)."""


class OptimizationRunFailed(RuntimeError):
    """The run started and failed; the row records why."""


@dataclass(frozen=True)
class OptimizationRequest:
    """What to optimise, on which data, with which method."""

    problem: str
    method: str
    symbols: tuple[str, ...]
    start: datetime
    end: datetime
    timeframe: str = "1h"
    budget: int = 2
    risk_aversion: float = 1.0
    return_floor: float | None = None
    cap: float | None = None
    lots: bool = False
    candidates: int = 10
    redundancy_weight: float = 1.0
    horizon: int = 1
    mu_model: str | None = None  # expected returns from this active model's predictions
    options: SolverOptions = field(default_factory=SolverOptions)
    source: str = "database"  # "sim": the simulated market's bars (stored marked simulated)

    def check(self) -> None:
        """Raise OptimizationRequestError naming the first bad value."""
        try:
            self._check()
            self.options.check()
        except OptimizationError as exc:
            raise OptimizationRequestError(str(exc)) from None

    def _check(self) -> None:
        if self.problem not in PROBLEMS:
            raise OptimizationError(f"unknown problem {self.problem!r}; use {', '.join(PROBLEMS)}")
        if self.method not in METHODS:
            raise OptimizationError(f"unknown method {self.method!r}; use {', '.join(METHODS)}")
        self._check_combinations()
        if self.timeframe not in TIMEFRAME_SECONDS:
            raise OptimizationError(f"unknown timeframe {self.timeframe!r}")
        if self.start >= self.end:
            raise OptimizationError("start must be before end")
        if self.source not in DATA_SOURCES:
            raise OptimizationError(f"source must be one of {', '.join(DATA_SOURCES)}")
        names = len(self.symbols) if self.problem != "features" else self.candidates
        if self.problem == "features" and len(self.symbols) != 1:
            raise OptimizationError("features: give exactly one symbol")
        if self.problem != "features" and len(set(self.symbols)) != len(self.symbols):
            raise OptimizationError("symbols must be distinct")
        if names < 2:
            raise OptimizationError("need at least 2 symbols (or feature candidates)")
        if not math.isfinite(self.risk_aversion) or self.risk_aversion < 0:
            raise OptimizationError("risk aversion must be a finite number >= 0")
        if self.horizon < 1:
            raise OptimizationError("horizon must be >= 1")
        # The engine's own checks of budget, cap and lots, on placeholder moments: the same
        # rules as the real build, before any data is loaded or any row written.
        portfolio_problem(
            np.zeros(names), np.eye(names), budget=self.budget, cap=self.cap, lots=self.lots
        )

    def _check_combinations(self) -> None:
        """Raise OptimizationError on options that do not apply to the problem."""
        if self.method == "meanvar" and self.problem == "features":
            raise OptimizationError("meanvar solves portfolio or minvar, not features")
        if self.lots and self.problem != "portfolio":
            raise OptimizationError("lots apply to the portfolio problem only")
        if self.mu_model is not None and self.problem == "features":
            raise OptimizationError("--mu-from-model applies to portfolio and minvar problems")

    def to_inputs(self) -> dict[str, Any]:
        """Return the request as JSON-ready data (``from_inputs`` rebuilds it)."""
        data = asdict(self)
        data["symbols"] = list(self.symbols)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        return data

    @classmethod
    def from_inputs(cls, data: dict[str, Any]) -> OptimizationRequest:
        """Rebuild a request stored by ``to_inputs``."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["symbols"] = tuple(values["symbols"])
        values["start"] = datetime.fromisoformat(values["start"])
        values["end"] = datetime.fromisoformat(values["end"])
        values["options"] = SolverOptions(**values.get("options", {}))
        return cls(**values)


def optimization_run_start(*, request: OptimizationRequest) -> OptimizationRun:
    """Validate the request and record a pending run (nothing is written on bad input)."""
    request.check()
    if request.mu_model is not None:
        _active_model(request.mu_model)
    return OptimizationRun.objects.create(
        kind=KINDS.get(request.method, OptimizationKind.CLASSICAL),
        problem=request.problem,
        inputs=request.to_inputs(),
        status=RunStatus.PENDING,
    )


def _closes(request: OptimizationRequest) -> pd.DataFrame:
    """Return the symbols' closes on their common bar times (stored, or simulated when asked)."""
    columns = {}
    for symbol in request.symbols:
        bars, _ = bars_load(
            symbol=symbol,
            timeframe=request.timeframe,
            start=request.start,
            end=request.end,
            source=request.source,
            seed=SIMULATION_SEED,
        )
        columns[symbol] = bars["close"]
    return pd.DataFrame(columns).dropna()


def _feature_inputs(request: OptimizationRequest) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return the top candidates' relevance and redundancy, and their names."""
    symbol = request.symbols[0]
    bars, _ = bars_load(
        symbol=symbol,
        timeframe=request.timeframe,
        start=request.start,
        end=request.end,
        source=request.source,
        seed=SIMULATION_SEED,
    )
    features = FeatureSet.for_frame(bars).compute(bars)
    target = make_targets(bars["close"].to_numpy(dtype=float), request.horizon).ret
    relevance, redundancy = feature_scores(
        features.to_numpy(dtype=float), target, seed=request.options.seed
    )
    # Only the most relevant candidates enter the QUBO: one qubit per candidate.
    top = np.sort(np.argsort(-relevance, kind="stable")[: request.candidates])
    names = [str(features.columns[i]) for i in top]
    return relevance[top], redundancy[np.ix_(top, top)], names


def _active_model(name: str) -> MLModel:
    """Return the active version of model ``name``, or raise OptimizationRequestError."""
    model = MLModel.objects.filter(name=name, active=True).first()
    if model is None:
        raise OptimizationRequestError(f"model {name!r} has no active version")
    return model


def _predicted_returns(request: OptimizationRequest) -> np.ndarray:
    """Return each symbol's latest predicted return before ``end``, per bar of its horizon."""
    model = _active_model(str(request.mu_model))
    values = []
    for symbol in request.symbols:
        latest = (
            Prediction.objects.filter(
                model=model, symbol__name=symbol, kind="return", ts__lt=request.end
            )
            .order_by("-ts")
            .first()
        )
        if latest is None:
            raise OptimizationError(
                f"{model} has no return prediction for {symbol} before {request.end:%Y-%m-%d %H:%M}"
            )
        # A prediction is over its horizon; the covariance is per bar of the model's timeframe.
        values.append(latest.value / max(1, latest.horizon))
    return np.array(values)


def build_problem(request: OptimizationRequest) -> Problem:
    """Return the selection problem of the request, estimated from the database's bars."""
    if request.problem == "features":
        relevance, redundancy, names = _feature_inputs(request)
        return feature_problem(
            relevance,
            redundancy,
            budget=request.budget,
            redundancy_weight=request.redundancy_weight,
            labels=tuple(names),
        )
    closes = _closes(request)
    predicted = _predicted_returns(request) if request.mu_model is not None else None
    mu, sigma = return_moments(closes.to_numpy(), predicted)
    labels = tuple(request.symbols)
    if request.problem == "minvar":
        return minvar_problem(
            mu, sigma, budget=request.budget, return_floor=request.return_floor, labels=labels
        )
    return portfolio_problem(
        mu,
        sigma,
        budget=request.budget,
        risk_aversion=request.risk_aversion,
        labels=labels,
        cap=request.cap,
        lots=request.lots,
    )


def _claim(run: OptimizationRun) -> None:
    """Move the run from pending to running, or raise if something else took it."""
    claimed = OptimizationRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING
    )
    if not claimed:
        run.refresh_from_db()
        raise OptimizationRunFailed(f"optimisation run {run.pk} is {run.status}, not pending")
    run.status = RunStatus.RUNNING


def _fail(run: OptimizationRun, message: str) -> None:
    """Record the failure on the row."""
    OptimizationRun.objects.filter(pk=run.pk).update(
        status=RunStatus.FAILED, error=message, finished_at=timezone.now()
    )
    run.refresh_from_db()


def _answer(problem: Problem, x: np.ndarray) -> dict[str, Any]:
    """Return a solution as labels, units and weights."""
    return {
        "x": [int(round(v)) for v in x],
        "chosen": [label for label, v in zip(problem.labels, x, strict=True) if v > 0.5],
        "weights": problem.weights(x),
    }


def _solve_and_score(
    request: OptimizationRequest, problem: Problem
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run the method and the greedy baseline; score both against every feasible solution."""
    timing: dict[str, float] = {}
    started = time.perf_counter()
    qubo = to_qubo(problem, request.options.penalty)
    if request.method in ("qaoa", "vqe") and qubo.qubits > MAX_CIRCUIT_QUBITS:
        raise OptimizationError(
            f"{qubo.qubits} qubits: too many to simulate (max {MAX_CIRCUIT_QUBITS})"
        )
    timing["qubo"] = time.perf_counter() - started
    started = time.perf_counter()
    feasible = _enumerate(problem)
    timing["exact"] = time.perf_counter() - started
    solution = solve(problem, request.method, request.options, qubo=qubo)
    timing["solve"] = solution.seconds
    greedy = solve(problem, "greedy", request.options, qubo=qubo)
    timing["greedy"] = greedy.seconds
    result: dict[str, Any] = {
        "method": request.method,
        "labels": list(problem.labels),
        "answer": _answer(problem, solution.x),
        "solver": solution.report(),
        "qubits": qubo.qubits,
        "penalty": qubo.penalty,
        "score": None,
        "baselines": {"greedy": {"answer": _answer(problem, greedy.x)}},
    }
    if feasible is not None:
        result["score"] = score(problem, solution.x, feasible, solution.samples).as_dict()
        result["baselines"]["greedy"]["score"] = score(problem, greedy.x, feasible).as_dict()
        best = feasible.solutions[0]
        result["baselines"]["exact"] = {
            "answer": _answer(problem, best),
            "score": score(problem, best, feasible).as_dict(),
        }
    return result, timing


def _enumerate(problem: Problem) -> FeasibleSet | None:
    """Return every feasible solution, or None when there are too many to list."""
    try:
        return FeasibleSet.enumerate(problem)
    except OptimizationError as exc:
        if str(MAX_FEASIBLE) in str(exc):
            return None
        raise


RUN_LOCK = run_owner.OPTIMIZE  # its executor holds ``optimize-run:<id>`` (rrr_site.run_owner)


def optimization_runs_reap() -> list[int]:
    """Fail every running optimisation whose owner died (its lock is free); return their ids."""
    return run_owner.runs_reap(OptimizationRun.objects.all(), RUN_LOCK)


def optimization_run_execute(*, run: OptimizationRun) -> OptimizationRun:
    """Claim the pending run, solve it and store the answer and its metrics (or the failure).

    Its lock is held from before the claim to the stored outcome: a process killed meanwhile
    leaves a run ``optimization_runs_reap`` fails (here, at the next run, and every minute).
    """
    optimization_runs_reap()
    lock = run_owner.run_lock(RUN_LOCK, run.pk)
    if not lock.acquire():
        holder = lock.holder() or "another process"
        raise OptimizationRunFailed(f"optimisation run {run.pk} is being run by {holder}")
    try:
        return _execute_owned(run)
    finally:
        lock.release()


def _execute_owned(run: OptimizationRun) -> OptimizationRun:
    _claim(run)
    request = OptimizationRequest.from_inputs(run.inputs)
    try:
        started = time.perf_counter()
        problem = build_problem(request)
        load = time.perf_counter() - started
        result, timing = _solve_and_score(request, problem)
    except (OptimizationError, MarketDataUnavailable, MLEngineError) as exc:
        _fail(run, str(exc))
        raise OptimizationRunFailed(f"optimisation run {run.pk} failed: {exc}") from exc
    except BaseException as exc:
        _fail(run, f"{type(exc).__name__}: {exc}")
        raise
    result["problem_inputs"] = _problem_inputs(problem)
    _complete(run, result, {"data": load, **timing})
    return run


def _problem_inputs(problem: Problem) -> dict[str, Any]:
    """Return the estimated inputs (moments or feature scores) the problem was built from."""
    data = {k: v for k, v in problem.meta.items()}
    if problem.kind == "features":
        data["relevance"] = problem.linear.tolist()
        data["redundancy"] = (-problem.quadratic).tolist()
    return data


@transaction.atomic
def _complete(run: OptimizationRun, result: dict[str, Any], timing: dict[str, float]) -> None:
    """Store the finished run."""
    scored = result["score"] or {}
    run.result = json_ready(result)
    run.objective = scored.get("objective")
    run.classical_objective = scored.get("optimum")
    run.approximation_ratio = scored.get("approximation_ratio")
    run.timing = json_ready(timing)
    run.status = RunStatus.COMPLETED
    run.finished_at = timezone.now()
    run.save()


def latest_portfolio_weights(*, run_id: int | None = None) -> dict[str, float]:
    """Return the target weights of a completed portfolio/minvar run (the latest if no id)."""
    runs = OptimizationRun.objects.filter(
        status=RunStatus.COMPLETED, problem__in=("portfolio", "minvar")
    )
    run = runs.filter(pk=run_id).first() if run_id is not None else runs.order_by("-pk").first()
    if run is None:
        which = f"run {run_id}" if run_id is not None else "no run"
        raise OptimizationRequestError(f"{which}: no completed portfolio optimisation found")
    return {str(k): float(v) for k, v in run.result["answer"]["weights"].items()}


def chosen_features(*, run_id: int) -> list[str]:
    """Return the feature names a completed feature-selection run chose."""
    run = OptimizationRun.objects.filter(pk=run_id).first()
    if run is None:
        raise OptimizationRequestError(f"optimisation run {run_id} does not exist")
    if run.problem != "features" or run.status != RunStatus.COMPLETED:
        raise OptimizationRequestError(
            f"optimisation run {run_id} is a {run.status} {run.problem} run, "
            "not a completed feature selection"
        )
    return [str(name) for name in run.result["answer"]["chosen"]]
