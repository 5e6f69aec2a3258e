"""``manage.py optimize``: solve a selection problem and print it beside the exact optimum."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketdata.data_source import add_data_source_argument
from marketdata.engine.events import TIMEFRAME_SECONDS
from marketdata.management.commands.backfill import parse_moment
from models_ml.engine.quantum.options import METHOD_NAMES, PROBLEMS, SolverOptions
from models_ml.models import OptimizationRun
from models_ml.optimization_tasks import OPTIMIZE_TASK

if TYPE_CHECKING:
    from models_ml.optimization import OptimizationRequest

# models_ml.optimization loads torch, qiskit, scipy and pandas (seconds): imported by the
# methods that run a problem, so `optimize --help` starts without them.

_ROW = "{:<8} {:<40} {:>12} {:>7} {:>9} {:>8} {:>8} {:>6} {:>6}"


def _fmt(value: Any, spec: str) -> str:
    """Format a number, or '-' when there is none."""
    return "-" if value is None else spec.format(value)


class Command(BaseCommand):
    help = (
        "Choose k of n symbols (portfolio, minvar) or m of the ML features (features) with QAOA, "
        "VQE, annealing or a classical method, estimated from stored bars (or the simulated "
        "market's with --source sim); records an OptimizationRun and prints the answer beside "
        "the exact optimum and the greedy heuristic."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        d = SolverOptions()
        parser.add_argument(
            "--problem",
            required=True,
            choices=PROBLEMS,
            help="portfolio (k of n symbols), minvar (minimum variance) or features (m of the "
            "ML features)",
        )
        parser.add_argument(
            "--method", required=True, choices=sorted(METHOD_NAMES), help="Solver to run"
        )
        parser.add_argument(
            "--symbols", required=True, help="Comma-separated, e.g. BTC-USD,ETH-USD"
        )
        parser.add_argument("--start", required=True, help="UTC date or ISO datetime, inclusive")
        parser.add_argument("--end", required=True, help="UTC date or ISO datetime, exclusive")
        parser.add_argument(
            "--timeframe", default="1h", choices=list(TIMEFRAME_SECONDS), help="Bar timeframe"
        )
        add_data_source_argument(parser)
        parser.add_argument("--budget", type=int, default=2, help="k assets, lots or m features")
        parser.add_argument(
            "--risk-aversion", type=float, default=1.0, help="portfolio: weight of the variance"
        )
        parser.add_argument("--return-floor", type=float, help="minvar: mean log return per bar")
        parser.add_argument("--lots", action="store_true", help="portfolio: integer lots")
        parser.add_argument("--cap", type=float, help="portfolio with --lots: max weight per asset")
        parser.add_argument("--candidates", type=int, default=10, help="features: top-N by MI")
        parser.add_argument(
            "--redundancy-weight",
            type=float,
            default=1.0,
            help="features: penalty on features that carry the same information",
        )
        parser.add_argument("--horizon", type=int, default=1, help="features: bars ahead")
        parser.add_argument(
            "--mu-from-model",
            metavar="NAME",
            help="Expected returns from model NAME's latest return predictions (active version)",
        )
        parser.add_argument("--reps", type=int, default=d.reps, help="QAOA depth p / VQE reps")
        parser.add_argument(
            "--shots", type=int, default=d.shots, help="Circuit samples per evaluation"
        )
        parser.add_argument("--seed", type=int, default=d.seed, help="Seed of every draw")
        parser.add_argument(
            "--maxiter", type=int, default=d.maxiter, help="Classical optimiser iterations"
        )
        parser.add_argument(
            "--optimizer",
            choices=["cobyla", "spsa"],
            default=d.optimizer,
            help="Classical optimiser of the variational parameters",
        )
        parser.add_argument("--warm-start", action="store_true", help="QAOA: warm start")
        parser.add_argument("--penalty", type=float, help="QUBO penalty (default: library bound)")
        parser.add_argument("--reads", type=int, default=d.num_reads, help="annealing reads")
        parser.add_argument("--sweeps", type=int, default=d.num_sweeps, help="annealing sweeps")
        parser.add_argument("--json", action="store_true", help="Print the run as JSON")
        parser.add_argument(
            "--async",
            dest="enqueue",
            action="store_true",
            help="Queue the run for a django-q2 worker and print the task id",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # The transpiler logs every pass at INFO: thousands of lines per run.
        logging.getLogger("qiskit").setLevel(logging.WARNING)
        from models_ml.optimization import (
            OptimizationRequestError,
            OptimizationRunFailed,
            optimization_run_execute,
            optimization_run_start,
        )

        request = self._request(options)
        try:
            run = optimization_run_start(request=request)
        except OptimizationRequestError as exc:
            raise CommandError(str(exc)) from None
        if options["enqueue"]:
            self._enqueue(run, options["json"])
            return
        try:
            optimization_run_execute(run=run)
        except OptimizationRunFailed as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(run_dict(run), indent=2, allow_nan=False))
        else:
            for line in report_lines(run):
                self.stdout.write(line)

    @staticmethod
    def _request(options: dict[str, Any]) -> OptimizationRequest:
        """Return the request the flags describe."""
        from models_ml.optimization import OptimizationRequest

        symbols = tuple(s.strip() for s in options["symbols"].split(",") if s.strip())
        return OptimizationRequest(
            problem=options["problem"],
            method=options["method"],
            symbols=symbols,
            start=parse_moment(options["start"], "--start"),
            end=parse_moment(options["end"], "--end"),
            timeframe=options["timeframe"],
            budget=options["budget"],
            risk_aversion=options["risk_aversion"],
            return_floor=options["return_floor"],
            cap=options["cap"],
            lots=options["lots"],
            candidates=options["candidates"],
            redundancy_weight=options["redundancy_weight"],
            horizon=options["horizon"],
            mu_model=options["mu_from_model"],
            source=options["source"],
            options=SolverOptions(
                reps=options["reps"],
                shots=options["shots"],
                seed=options["seed"],
                maxiter=options["maxiter"],
                optimizer=options["optimizer"],
                warm_start=options["warm_start"],
                penalty=options["penalty"],
                num_reads=options["reads"],
                num_sweeps=options["sweeps"],
            ),
        )

    def _enqueue(self, run: OptimizationRun, as_json: bool) -> None:
        """Queue the run; report the outcome when the cluster ran it inline."""
        from django_q.tasks import async_task, fetch

        task_id = async_task(OPTIMIZE_TASK, run.pk, task_name=f"optimize-{run.pk}")
        done = fetch(task_id)  # only set already when the cluster runs tasks inline (sync)
        run.refresh_from_db()
        if as_json:
            self.stdout.write(json.dumps({"run": run.pk, "task": task_id, "status": run.status}))
        else:
            self.stdout.write(f"optimisation run {run.pk} queued as django-q task {task_id}")
        if done is not None and not done.success:
            raise CommandError(f"optimisation run {run.pk} failed: {run.error or done.result}")


def _chosen(problem: str, answer: dict[str, Any]) -> str:
    """Return the chosen names (features) or names with weights (portfolios), shortened."""
    if problem == "features":
        text = ", ".join(answer["chosen"])
    else:
        text = ", ".join(f"{k} {w:.2f}" for k, w in answer["weights"].items())
    return text if len(text) <= 40 else text[:37] + "..."


def run_dict(run: OptimizationRun) -> dict[str, Any]:
    """Return the run as JSON-ready data."""
    return {
        "run": run.pk,
        "kind": run.kind,
        "problem": run.problem,
        "status": run.status,
        "inputs": run.inputs,
        "result": run.result,
        "objective": run.objective,
        "classical_objective": run.classical_objective,
        "approximation_ratio": run.approximation_ratio,
        "timing": run.timing,
    }


def report_lines(run: OptimizationRun) -> list[str]:
    """Return the answer beside the exact optimum and greedy, one row per method."""
    inputs, result = run.inputs, run.result
    solver = result["solver"]
    lines = [
        f"optimisation run {run.pk}: {run.problem} by {result['method']} on "
        f"{len(result['labels'])} choices, budget {inputs['budget']}, {inputs['timeframe']} bars "
        f"{inputs['start']} .. {inputs['end']}",
        f"QUBO: {result['qubits']} qubits, penalty {result['penalty']:.4g}",
        _ROW.format(
            "method",
            "chosen",
            "objective",
            "ratio",
            "rank",
            "feasible",
            "seconds",
            "qubits",
            "depth",
        ),
    ]
    rows = [(result["method"], result["answer"], result["score"], solver)]
    # "optimum" is brute-force enumeration, the reference every ratio and rank is taken from.
    for name, label in (("exact", "optimum"), ("greedy", "greedy")):
        baseline = result["baselines"].get(name)
        if baseline is not None:
            seconds = run.timing.get(name)
            rows.append((label, baseline["answer"], baseline.get("score"), {"seconds": seconds}))
    for name, answer, scored, cost in rows:
        scored = scored or {}
        rank = scored.get("rank")
        lines.append(
            _ROW.format(
                name,
                _chosen(run.problem, answer),
                _fmt(scored.get("objective"), "{:.4e}"),
                _fmt(scored.get("approximation_ratio"), "{:.3f}"),
                f"{rank}/{scored['feasible_count']}" if rank else "-",
                {True: "yes", False: "NO"}.get(scored.get("feasible"), "-"),
                _fmt(cost.get("seconds"), "{:.3f}"),
                _fmt(cost.get("qubits"), "{}"),
                _fmt(cost.get("depth"), "{}"),
            )
        )
    if run.problem != "features":
        weights = ",".join(f"{k}:{w:.6g}" for k, w in result["answer"]["weights"].items())
        lines.append(f"hold it: backtest/runtrader --strategy rebalance --param weights={weights}")
    if result["score"] and result["score"].get("optimal_probability") is not None:
        lines.append(
            f"sampled distribution: P(feasible) {result['score']['feasible_probability']:.3f}, "
            f"P(optimal) {result['score']['optimal_probability']:.4f}, {solver['shots']} shots"
        )
    return lines
