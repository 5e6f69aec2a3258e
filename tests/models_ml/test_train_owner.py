"""A training run is owned by a lock that dies with its process; orphaned runs are failed.

A ``train`` killed with SIGKILL cannot record anything: the next look at running rows (the reaper
that every ``train`` start and every train task calls) finds its lock free and fails the run,
while a run whose owner is alive is never touched.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import call_command

from models_ml.choices import RunStatus
from models_ml.models import MLModel, TrainingRun
from models_ml.services import (
    OWNER_DIED,
    TrainingRunStateError,
    train_model,
    training_run_lock,
    training_run_start,
    training_runs_reap,
)
from models_ml.tasks import train_task
from tests.polling import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[2]
START, END = "2024-01-01", "2024-01-03T02:00"  # 3,000 one-minute bars
T0, T1 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 3, 2, tzinfo=UTC)
HPARAMS = '{"channels": 8, "n_layers": 2}'
TINY_PARAMS = {"epochs": 1, "folds": 2, "window": 32, "hparams": {"channels": 8, "n_layers": 2},
               "source": "sim"}
# A long search and many epochs of a tiny CNN: early stopping cannot end it before the kill.
LONG_TRAIN = [sys.executable, "manage.py", "train", "--model", "cnn", "--hparams", HPARAMS,
              "--symbols", "BTC-USD", "--start", START, "--end", END, "--epochs", "500",
              "--trials", "50", "--folds", "4", "--window", "32", "--no-progress",
              "--source", "sim"]


@pytest.fixture(autouse=True)
def models_dir(settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    return settings.MODELS_DIR


def start_training(env: dict[str, str]) -> tuple[subprocess.Popen, TrainingRun]:
    """Start a long ``manage.py train``; return it once its run is running."""
    proc = subprocess.Popen(LONG_TRAIN, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)

    def training() -> bool:
        run = TrainingRun.objects.first()
        return (run is not None and run.status == RunStatus.RUNNING) or proc.poll() is not None

    try:
        wait_for(training, timeout=90, what="the training run to run", interval=0.2)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    return proc, TrainingRun.objects.get()


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the process and reap it (no handler runs: nothing is recorded)."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stderr is not None:
        proc.stderr.close()


def assert_reaped(run: TrainingRun) -> None:
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED, run.status
    assert run.error.startswith(OWNER_DIED), run.error
    assert run.finished_at is not None and run.model is None


def test_a_live_owner_is_left_alone_and_a_killed_one_is_failed_at_once(subprocess_env):
    proc, run = start_training(subprocess_env)
    try:
        assert training_runs_reap() == []
        run.refresh_from_db()
        assert run.status == RunStatus.RUNNING and not run.error
        assert not training_run_lock(run.pk).acquire(), "the live owner holds its run's lock"
    finally:
        kill(proc)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING, "SIGKILL leaves the row running: nobody wrote"

    assert training_runs_reap() == [run.pk]
    assert_reaped(run)
    assert training_runs_reap() == [], "a reaped run is reaped once"


def test_the_next_train_fails_the_run_of_a_killed_train(subprocess_env):
    proc, run = start_training(subprocess_env)
    kill(proc)

    err = io.StringIO()
    call_command("train", "--model", "cnn", "--hparams", HPARAMS, "--symbols", "BTC-USD",
                 "--start", START, "--end", END, "--epochs", "1", "--folds", "2", "--window",
                 "32", "--no-progress", "--source", "sim", stdout=io.StringIO(), stderr=err)

    assert_reaped(run)
    assert f"training run {run.pk} had lost its process" in err.getvalue()
    newest = TrainingRun.objects.exclude(pk=run.pk).get()
    assert newest.status == RunStatus.COMPLETED and newest.model is not None


def test_a_train_task_fails_the_run_of_a_killed_train(subprocess_env):
    proc, run = start_training(subprocess_env)
    kill(proc)

    queued = training_run_start(model_type="cnn", symbols=["BTC-USD"], timeframe="1m",
                                start=T0, end=T1, params=TINY_PARAMS)
    outcome = train_task(queued.pk)

    assert_reaped(run)
    queued.refresh_from_db()
    assert queued.status == RunStatus.COMPLETED and outcome["run"] == queued.pk


def test_a_running_row_whose_lock_is_free_is_failed_and_a_held_one_kept():
    held = TrainingRun.objects.create(model_type="cnn", status=RunStatus.RUNNING)
    orphan = TrainingRun.objects.create(model_type="cnn", status=RunStatus.RUNNING)
    pending = TrainingRun.objects.create(model_type="cnn", status=RunStatus.PENDING)
    owner = training_run_lock(held.pk)
    assert owner.acquire()
    try:
        assert training_runs_reap() == [orphan.pk]
    finally:
        owner.release()
    held.refresh_from_db()
    pending.refresh_from_db()
    assert held.status == RunStatus.RUNNING and not held.error
    assert pending.status == RunStatus.PENDING, "a queued run has no owner yet: not reaped"
    assert_reaped(orphan)


def test_a_run_whose_lock_another_process_holds_is_not_trained():
    run = training_run_start(model_type="cnn", symbols=["BTC-USD"], timeframe="1m",
                             start=T0, end=T1, params=TINY_PARAMS)
    other = training_run_lock(run.pk)  # a second descriptor or session: another owner
    assert other.acquire()
    try:
        with pytest.raises(TrainingRunStateError, match="owned by another process"):
            train_model(run=run)
    finally:
        other.release()
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING and run.started_at is None


def test_a_run_reaped_while_training_is_never_completed_afterwards():
    """An owner that lost its lock (and so its run) must not resurrect the run at the end."""
    run = training_run_start(model_type="cnn", symbols=["BTC-USD"], timeframe="1m",
                             start=T0, end=T1, params=TINY_PARAMS)
    reason = f"{OWNER_DIED} (its lock train-run:{run.pk} was free while running)"

    def reaped_meanwhile(metrics) -> None:
        TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error=reason)

    with pytest.raises(TrainingRunStateError, match="no longer running"):
        train_model(run=run, on_epoch=reaped_meanwhile)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error == reason
    assert not MLModel.objects.exists(), "the version of a reaped run is rolled back"


def test_the_admin_list_fails_orphaned_runs_and_says_so(admin_client):
    orphan = TrainingRun.objects.create(model_type="cnn", status=RunStatus.RUNNING)
    page = admin_client.get("/admin/models_ml/trainingrun/")
    assert page.status_code == 200
    assert_reaped(orphan)
    assert f"Training runs {orphan.pk} marked failed: {OWNER_DIED}" in page.content.decode()
