"""``manage.py backtest``: runs, sweeps as django-q tasks, walk-forward, bad input."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_q.models import Task

from backtesting.models import BacktestRun, BacktestTrade

pytestmark = pytest.mark.django_db(transaction=True)
BASE = ["--symbols", "BTC-USD", "--timeframe", "1h", "--start", "2024-01-01",
        "--end", "2024-02-15", "--source", "sim"]


def backtest(*args: str) -> str:
    """Run the command and return its stdout."""
    out = StringIO()
    call_command("backtest", *args, stdout=out)
    return out.getvalue()


def test_single_run_records_trades_metrics_baseline_and_an_offline_report(tmp_path):
    report = tmp_path / "r.html"
    out = backtest("--strategy", "sma_cross", *BASE, "--param", "fast=5", "--param", "slow=20",
                   "--fees-bps", "10", "--slippage-bps", "2", "--montecarlo", "200",
                   "--report", str(report), "--json")
    doc = json.loads(out.strip().splitlines()[-1])
    run = BacktestRun.objects.get(pk=doc["run"])
    assert run.status == "completed" and run.params == {"fast": 5, "slow": 20}
    assert run.metrics["data"] == {"BTC-USD": "simulated"}
    assert run.metrics["trades"] == BacktestTrade.objects.filter(run=run).count() > 0
    assert {"sharpe", "sortino", "max_drawdown", "probabilistic_sharpe"} <= set(run.metrics)
    assert "total_return" in run.metrics["buy_and_hold"]
    assert {"trade_shuffle", "block_bootstrap"} & set(run.metrics["montecarlo"])
    html = report.read_text()
    assert not re.search(r"<script[^>]+src=[\"']https?:", html), "report must work offline"
    assert "plotly" in html.lower()
    assert report.with_suffix(".trades.csv").exists()
    assert 0 < len(run.equity_curve) <= 2_001


def test_grid_sweep_runs_each_parameter_set_as_a_task_in_one_group():
    out = backtest("--strategy", "sma_cross", *BASE, "--optimize", "grid",
                   "--space", "fast=5:10:5", "--space", "slow=20:30:10", "--json")
    parent = BacktestRun.objects.get(pk=json.loads(out.strip().splitlines()[-1])["run"])
    children = parent.children.all()
    assert children.count() == 4 and all(c.status == "completed" for c in children)
    assert Task.objects.filter(group=parent.task_group).count() == 4
    best = parent.metrics["search"]["best_params"]
    assert parent.params == best and len(parent.metrics["search"]["trials"]) == 4
    assert parent.status == "completed" and parent.trades.exists()


def test_walk_forward_stitches_out_of_sample_windows():
    out = backtest("--strategy", "sma_cross", *BASE, "--optimize", "walkforward",
                   "--space", "fast=5:10:5", "--space", "slow=20:30:10",
                   "--train-bars", "400", "--test-bars", "200", "--json")
    run = BacktestRun.objects.get(pk=json.loads(out.strip().splitlines()[-1])["run"])
    wf = run.metrics["walk_forward"]
    assert len(wf["parameter_path"]) >= 2 and "sharpe" in wf["oos_metrics"]


def test_async_enqueues_the_run():
    out = backtest("--strategy", "rsi_reversion", *BASE, "--async", "--json")
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["task"]
    assert BacktestRun.objects.get(pk=doc["run"]).status == "completed"  # sync under pytest


@pytest.mark.parametrize("args,message", [
    (["--strategy", "nope", *BASE], "--strategy: unknown strategy 'nope'"),
    (["--strategy", "sma_cross", "--start", "2024-02-01", "--end", "2024-01-01"], "after"),
    (["--strategy", "sma_cross", "--end", "2024-01-01"], "required"),
    (["--strategy", "sma_cross", *BASE, "--param", "fast=50", "--param", "slow=10"], "fast"),
    (["--strategy", "sma_cross", *BASE, "--optimize", "walkforward"], "--train-bars"),
    (["--strategy", "sma_cross", *BASE, "--fees-bps", "x"], "--fees-bps must be a number"),
    (["--replay-account", "ghost", *BASE], "no account"),
])
def test_bad_input_is_a_command_error(args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        backtest(*args)
    assert not Path("data/reports/backtest_None.html").exists()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A tiny LSTM trained on simulated 1h bars."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from marketdata.engine.simulator import SimulatedMarket
    from models_ml.engine.pipeline import TrainingSpec, run_training
    from models_ml.engine.training import TrainConfig

    start = datetime(2023, 6, 1, tzinfo=UTC)
    frame = SimulatedMarket(["BTC-USD"], seed=3, start=start).history_bars(
        ["BTC-USD"], "1h", start, datetime(2023, 9, 1, tzinfo=UTC))
    bars = frame[frame["symbol"] == "BTC-USD"].set_index("ts")
    spec = TrainingSpec(kind="lstm", hparams={"hidden": 8, "n_layers": 1}, window=16, n_folds=2)
    outcome = run_training(bars, replace(spec, train=TrainConfig(epochs=1, num_threads=1)))
    path = tmp_path_factory.mktemp("bt-model") / "artifact"
    outcome.save(path, {"name": "btc-1h"})
    return path


def test_model_signal_backtests_on_the_active_models_predictions(tiny_model_dir):
    from django.utils import timezone

    from models_ml.models import MLModel

    with pytest.raises(CommandError, match="needs an active 1h model"):
        backtest("--strategy", "model_signal", *BASE)
    MLModel.objects.create(name="btc-1h", model_type="lstm", version=1, active=True,
                           artifact_path=str(tiny_model_dir), symbols=["BTC-USD"],
                           timeframe="1h", trained_at=timezone.now())
    out = backtest("--strategy", "model_signal", *BASE, "--param", "threshold=0.5", "--json")
    run = BacktestRun.objects.get(pk=json.loads(out.strip().splitlines()[-1])["run"])
    assert run.status == "completed" and run.metrics["orders"] > 0
