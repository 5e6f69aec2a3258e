"""``manage.py train``, ``train_model`` and ``train_task`` on simulated bars stored in the DB."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from marketdata.models import Bar
from marketdata.selectors import bars_frame
from models_ml.choices import RunStatus
from models_ml.engine.inference import Predictor
from models_ml.engine.registry import sha256_file
from models_ml.engine.training import EpochMetrics
from models_ml.management.commands.train import EpochProgress
from models_ml.models import MLModel, TrainingRun
from models_ml.selectors import model_artifact_dir
from models_ml.services import TrainingRunStateError, train_model, training_run_start
from monitoring.models import AuditLog

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(120)]

START, END = "2024-01-01", "2024-01-03T02:00"  # 3,000 one-minute bars
T0, T1 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 3, 2, tzinfo=UTC)
CNN = ["--model", "cnn", "--hparams", '{"channels": 8, "n_layers": 2}']
TINY = ["--start", START, "--end", END, "--epochs", "1", "--folds", "2", "--window", "32",
        "--source", "sim"]
TINY_PARAMS = {"epochs": 1, "folds": 2, "window": 32, "hparams": {"channels": 8, "n_layers": 2},
               "source": "sim"}


@pytest.fixture(autouse=True)
def models_dir(settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    return settings.MODELS_DIR


def train(*args: str) -> tuple[str, str]:
    """Run the command in-process; return (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command("train", *args, "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_simulates_stores_trains_and_registers_a_loadable_model(models_dir):
    out, _ = train(*CNN, "--symbols", "BTC-USD", *TINY)

    assert Bar.objects.filter(symbol__name="BTC-USD", timeframe="1m").count() == 3000
    run = TrainingRun.objects.get()
    assert run.status == RunStatus.COMPLETED and run.progress == 1.0 and not run.error
    assert run.started_at <= run.finished_at
    # one epoch per walk-forward fold, then the final fit on every sample (fold index 2)
    assert [(e["fold"], e["epoch"], e["phase"]) for e in run.epochs] == [
        (0, 0, "fold"),
        (1, 0, "fold"),
        (2, 0, "final"),
    ]
    assert all(np.isfinite(e["train_loss"]) and np.isfinite(e["val_loss"]) for e in run.epochs)
    assert [f["fold"] for f in run.fold_metrics] == [0, 1]
    assert run.metrics["data"]["source"] == "simulated"
    assert set(run.metrics["baselines"]) == {"always_long", "previous_sign", "logistic", "random"}

    model = MLModel.objects.get()
    assert run.model == model
    assert (model.name, model.version, model.model_type, model.active) == (
        "BTC-USD-cnn",
        1,
        "cnn",
        False,
    )
    assert model.symbols == ["BTC-USD"] and model.timeframe == "1m"
    assert model.metrics["verdict"] in {"edge", "no edge"}
    assert model.hyperparameters["network"]["channels"] == 8
    directory = model_artifact_dir(model)
    assert directory == models_dir / "BTC-USD-cnn" / "v1"
    assert sha256_file(directory / "weights.pt") == model.checksum

    predictor = Predictor.load(directory)
    assert list(predictor.spec.feature_names) == model.feature_names
    predictions = predictor.predict_batch(
        bars_frame(symbol="BTC-USD", timeframe="1m", start=T0, end=T1, simulated=True)
    )
    assert len(predictions) > 2500
    assert predictions["probability"].between(0.0, 1.0).all()

    assert "SIMULATED" in out and "always_long" in out and "verdict: " in out


def test_second_run_trains_on_the_stored_bars_and_adds_a_version():
    train(*CNN, "--symbols", "BTC-USD", *TINY)
    out, _ = train(*CNN, "--symbols", "BTC-USD", *TINY)

    # The stored simulated bars are read back, not generated again, and still say what they are.
    assert Bar.objects.filter(symbol__name="BTC-USD", simulated=True).count() == 3000
    assert not Bar.objects.filter(simulated=False).exists()
    second = TrainingRun.objects.order_by("pk").last()
    assert second.metrics["data"]["source"] == "simulated"
    assert list(MLModel.objects.order_by("version").values_list("version", flat=True)) == [1, 2]
    assert "SIMULATED bars (--source sim" in out


def test_epochs_and_progress_are_stored_as_they_happen():
    run = training_run_start(
        model_type="cnn", symbols=["BTC-USD"], timeframe="1m", start=T0, end=T1, params=TINY_PARAMS
    )
    seen = []

    def peek(metrics) -> None:
        stored = TrainingRun.objects.get(pk=run.pk)
        seen.append((metrics.fold, stored.status, len(stored.epochs), stored.progress))

    model = train_model(run=run, name="peek", on_epoch=peek)

    assert [(f, s, n) for f, s, n, _ in seen] == [
        (0, "running", 1),
        (1, "running", 2),
        (2, "running", 3),
    ]
    progress = [p for *_, p in seen]
    assert progress == sorted(progress) and 0 < progress[0] < 1
    assert model.name == "peek"


def test_json_output_parses_and_records_symbol_and_search():
    lstm = ["--model", "lstm", "--hparams", '{"hidden": 8, "n_layers": 1}']
    out, _ = train(*lstm, "--symbols", "BTC-USD,ETH-USD", *TINY, "--trials", "1", "--json")

    result = json.loads(out)
    assert result["status"] == "completed"
    assert result["model"]["symbols"] == ["BTC-USD"] and result["model"]["type"] == "lstm"
    assert result["data"]["ignored_symbols"] == ["ETH-USD"]
    assert result["evaluation"]["model"]["n"] == sum(f["n_test"] for f in result["fold_metrics"])
    assert result["verdict"] == ("edge" if result["has_edge"] else "no edge")
    assert TrainingRun.objects.get().symbols == ["BTC-USD", "ETH-USD"]
    # one random-search trial over what --hparams left open; its choice is what was trained
    [trial] = result["search"]
    assert set(trial["params"]) == {"dropout", "lr"}
    assert result["hyperparameters"]["train"]["lr"] == trial["params"]["lr"]
    assert result["hyperparameters"]["network"]["dropout"] == trial["params"]["dropout"]


def test_async_runs_the_task_under_the_sync_queue():
    from django_q.models import Task

    out, _ = train(*CNN, "--symbols", "BTC-USD", *TINY, "--async", "--name", "queued")

    assert "queued as django-q task" in out and "succeeded" in out
    run = TrainingRun.objects.get()
    assert run.status == RunStatus.COMPLETED and run.model.name == "queued"
    task = Task.objects.get(name=f"train-{run.pk}")
    assert task.success and task.result["model"] == run.model.pk


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gru", "--symbols", "BTC-USD", *TINY], "invalid choice"),
        ([*CNN, "--symbols", "BTC-USD", "--start", "2024-01-02", "--end", "2024-01-01"], "after"),
        ([*CNN, "--symbols", "BTC-USD", "--start", START, "--end", "2024-01-01T03:00"], "at least"),
        ([*CNN, "--symbols", "BTC-USD", *TINY, "--folds", "0"], "folds must be >= 1"),
        ([*CNN, "--symbols", " ", *TINY], "at least one symbol"),
        (["--model", "cnn", "--symbols", "BTC-USD", *TINY, "--hparams", "{"], "not JSON"),
        (["--model", "cnn", "--symbols", "BTC-USD", *TINY, "--hparams", '{"depth": 2}'], "depth"),
        ([*CNN, "--symbols", "BTC-USD", *TINY, "--name", "../escape"], "model name"),
        ([*CNN, "--symbols", "BTC-USD", *TINY, "--start", "yesterday"], "not a date"),
    ],
)
def test_bad_input_is_a_command_error_and_starts_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        train(*args)
    assert not TrainingRun.objects.exists()


def test_unsimulatable_symbol_without_bars_fails_the_run():
    with pytest.raises(CommandError, match="none can be simulated"):
        train(*CNN, "--symbols", "DOGE-EUR", *TINY)
    run = TrainingRun.objects.get()
    assert run.status == RunStatus.FAILED and "TrainingDataError: no DOGE-EUR" in run.error
    assert run.finished_at is not None and not MLModel.objects.exists()


def test_a_run_is_trained_once():
    run = training_run_start(
        model_type="cnn", symbols=["BTC-USD"], timeframe="1m", start=T0, end=T1, params=TINY_PARAMS
    )
    train_model(run=run)
    with pytest.raises(TrainingRunStateError, match="not pending"):
        train_model(run=TrainingRun.objects.get(pk=run.pk))
    assert MLModel.objects.count() == 1


def test_activate_is_audited_and_leaves_one_active_version():
    force = ["--activate", "--force-activate"]  # the tiny model has no edge (next test)
    train(*CNN, "--symbols", "BTC-USD", *TINY, *force)
    out, err = train(*CNN, "--symbols", "BTC-USD", *TINY, *force)

    versions = {m.version: m.active for m in MLModel.objects.filter(name="BTC-USD-cnn")}
    assert versions == {1: False, 2: True}
    assert "ACTIVE" in out and "ACTIVATED WITHOUT AN EDGE" in err
    entries = list(
        AuditLog.objects.order_by("pk").values_list("action", "object_repr", "actor_repr")
    )
    assert entries == [
        ("ml_model.activate", "BTC-USD-cnn v1 (active)", "train-command"),
        ("ml_model.deactivate", "BTC-USD-cnn v1", "train-command"),
        ("ml_model.activate", "BTC-USD-cnn v2 (active)", "train-command"),
    ]
    assert AuditLog.objects.order_by("pk").last().after == {
        "active": True, "forced": True, "verdict": "no edge"
    }


def test_activate_refuses_a_version_without_an_edge_unless_forced():
    with pytest.raises(CommandError, match="no edge out of sample.*--force-activate"):
        train(*CNN, "--symbols", "BTC-USD", *TINY, "--activate")
    model = MLModel.objects.get()
    assert model.metrics["verdict"] == "no edge" and not model.active
    assert not AuditLog.objects.exists()


def test_progress_bar_skips_epochs_an_early_stop_left_out():
    progress = EpochProgress(folds=2, epochs=3, enabled=True)  # writes to stderr
    progress(EpochMetrics(0, 0, 0.7, 0.7, 0.5, 0.1, True))
    assert progress.bar.n == 1
    progress(EpochMetrics(1, 0, 0.7, 0.7, 0.5, 0.1, True))  # fold 0 stopped after one epoch
    assert (progress.bar.n, progress.bar.desc) == (4, "fold 2/2: ")
    progress(EpochMetrics(2, 1, 0.7, 0.7, 0.5, 0.1, True))
    assert (progress.bar.n, progress.bar.desc) == (8, "final fit: ")
    progress.close(complete=True)
    assert progress.bar.n == 9
