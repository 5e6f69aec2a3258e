"""``manage.py optimize``: an OptimizationRun per run, answers beside the optimum, clear errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from marketdata.models import Bar, Symbol
from models_ml.choices import OptimizationKind, RunStatus
from models_ml.models import MLModel, OptimizationRun, Prediction
from models_ml.optimization import OptimizationRequestError, latest_portfolio_weights

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[3]
SYMBOLS = "BTC-USD,ETH-USD,SOL-USD,AVAX-USD"
RANGE = ["--start", "2024-01-01", "--end", "2024-01-04", "--timeframe", "1h",
         "--source", "sim"]  # 72 bars each
FAST = ["--shots", "256", "--maxiter", "15", "--seed", "3"]


def optimize(*args: str) -> str:
    """Run the command in-process; return stdout."""
    out = io.StringIO()
    call_command("optimize", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_exact_portfolio_run_is_recorded_with_inputs_answer_and_metrics():
    out = optimize(
        "--problem", "portfolio", "--method", "exact", "--symbols", SYMBOLS, "--budget", "2", *RANGE
    )

    run = OptimizationRun.objects.get()
    assert run.status == RunStatus.COMPLETED and run.kind == OptimizationKind.CLASSICAL
    assert run.inputs["symbols"] == SYMBOLS.split(",") and run.inputs["budget"] == 2
    assert len(run.result["answer"]["chosen"]) == 2
    assert sum(run.result["answer"]["weights"].values()) == pytest.approx(1.0)
    assert run.result["score"]["feasible_count"] == 6  # C(4, 2)
    assert run.approximation_ratio == pytest.approx(1.0) and run.result["score"]["rank"] == 1
    assert run.objective == pytest.approx(run.classical_objective)
    assert len(run.result["problem_inputs"]["sigma"]) == 4
    assert set(run.timing) >= {"data", "qubo", "exact", "solve", "greedy"}
    assert Bar.objects.filter(timeframe="1h").count() == 4 * 72
    for method in ("exact", "optimum", "greedy"):
        assert any(line.startswith(method) for line in out.splitlines()), out
    weights = ",".join(f"{k}:{w:.6g}" for k, w in run.result["answer"]["weights"].items())
    assert f"--strategy rebalance --param weights={weights}" in out


def test_qaoa_run_reports_ratio_rank_circuit_and_sampled_distribution():
    optimize(
        "--problem",
        "portfolio",
        "--method",
        "qaoa",
        "--symbols",
        SYMBOLS,
        "--budget",
        "2",
        "--risk-aversion",
        "5",
        *RANGE,
        *FAST,
    )

    run = OptimizationRun.objects.get()
    assert run.kind == OptimizationKind.QAOA and run.status == RunStatus.COMPLETED
    score, solver = run.result["score"], run.result["solver"]
    assert score["feasible"] and 0 <= run.approximation_ratio <= 1
    assert 1 <= score["rank"] <= 6 and 0 < score["feasible_probability"] <= 1
    assert solver["qubits"] == 4 and solver["depth"] > 0 and solver["shots"] == 256
    assert run.result["baselines"]["greedy"]["score"]["feasible"]


def test_minvar_and_features_problems_run_with_json_output():
    data = json.loads(
        optimize(
            "--problem",
            "minvar",
            "--method",
            "anneal",
            "--symbols",
            SYMBOLS,
            "--budget",
            "2",
            "--reads",
            "50",
            *RANGE,
            "--json",
        )
    )
    assert data["status"] == "completed" and data["kind"] == "annealing"
    assert data["result"]["score"]["feasible"]
    data = json.loads(
        optimize(
            "--problem",
            "features",
            "--method",
            "greedy",
            "--symbols",
            "BTC-USD",
            "--budget",
            "3",
            "--candidates",
            "6",
            *RANGE,
            "--json",
        )
    )
    assert len(data["result"]["answer"]["chosen"]) == 3
    assert len(data["result"]["labels"]) == 6 and data["result"]["score"]["feasible_count"] == 20


def test_async_runs_the_task_under_the_sync_queue():
    out = optimize(
        "--problem", "portfolio", "--method", "greedy", "--symbols", SYMBOLS, *RANGE, "--async"
    )
    run = OptimizationRun.objects.get()
    assert f"optimisation run {run.pk} queued" in out and run.status == RunStatus.COMPLETED


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "5"], "budget must be between 1 and 4"),
        (["--budget", "2", "--lots"], "cap must be a weight in (0, 1]"),
        (["--start", "2024-01-05"], "start must be before end"),
        (["--reps", "9"], "reps must be between 1 and 5"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace("]", r"\]")):
        optimize("--problem", "portfolio", "--method", "exact", "--symbols", SYMBOLS, *RANGE, *args)
    assert not OptimizationRun.objects.exists() and not Bar.objects.exists()


def test_a_symbol_that_has_no_bars_fails_the_run_with_the_reason():
    with pytest.raises(CommandError, match="none can be simulated"):
        optimize(
            "--problem", "portfolio", "--method", "exact", "--symbols", "BTC-USD,NOPE-USD", *RANGE
        )
    run = OptimizationRun.objects.get()
    assert run.status == RunStatus.FAILED and "NOPE-USD" in run.error and run.finished_at


def test_latest_portfolio_weights_come_from_the_newest_completed_run():
    with pytest.raises(OptimizationRequestError, match="no completed portfolio"):
        latest_portfolio_weights()
    optimize("--problem", "portfolio", "--method", "exact", "--symbols", SYMBOLS, *RANGE)
    run = OptimizationRun.objects.get()
    assert latest_portfolio_weights() == run.result["answer"]["weights"]
    assert latest_portfolio_weights(run_id=run.pk) == run.result["answer"]["weights"]


def test_admin_lists_and_shows_runs(admin_client):
    optimize("--problem", "portfolio", "--method", "greedy", "--symbols", SYMBOLS, *RANGE)
    run = OptimizationRun.objects.get()
    assert admin_client.get("/admin/models_ml/optimizationrun/").status_code == 200
    page = admin_client.get(f"/admin/models_ml/optimizationrun/{run.pk}/change/")
    assert page.status_code == 200 and b"greedy" in page.content


def test_the_process_exits_non_zero_with_one_line(subprocess_env):
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "optimize",
            "--problem",
            "portfolio",
            "--method",
            "qaoa",
            "--symbols",
            "BTC-USD",
            *RANGE,
        ],
        cwd=ROOT,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["CommandError: need at least 2 symbols (or feature candidates)"]


def test_expected_returns_can_come_from_a_models_predictions():
    with pytest.raises(CommandError, match="model 'ret' has no active version"):
        optimize(
            "--problem",
            "portfolio",
            "--method",
            "exact",
            "--symbols",
            SYMBOLS,
            *RANGE,
            "--mu-from-model",
            "ret",
        )
    assert not OptimizationRun.objects.exists()
    optimize("--problem", "portfolio", "--method", "greedy", "--symbols", SYMBOLS, *RANGE)
    OptimizationRun.objects.all().delete()  # it stored the symbols' bars
    model = MLModel.objects.create(name="ret", model_type="cnn", version=1, active=True)
    # Predicted 4-bar returns: SOL and AVAX far ahead of the others, so they must be chosen.
    predicted = {"BTC-USD": -0.01, "ETH-USD": -0.02, "SOL-USD": 0.08, "AVAX-USD": 0.04}
    for name, value in predicted.items():
        symbol = Symbol.objects.get(name=name)  # stored with its simulated bars
        Prediction.objects.create(
            model=model,
            symbol=symbol,
            kind="return",
            horizon=4,
            value=value,
            ts=datetime(2024, 1, 3, tzinfo=UTC),
        )
    optimize(
        "--problem",
        "portfolio",
        "--method",
        "exact",
        "--symbols",
        SYMBOLS,
        *RANGE,
        "--mu-from-model",
        "ret",
    )
    run = OptimizationRun.objects.get()
    assert run.result["problem_inputs"]["mu"] == pytest.approx([-0.0025, -0.005, 0.02, 0.01])
    assert run.result["answer"]["chosen"] == ["SOL-USD", "AVAX-USD"]
