"""A ``manage.py train`` process told to stop records its run as stopped and exits non-zero."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from models_ml.choices import RunStatus
from models_ml.models import TrainingRun
from tests.polling import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[2]
# Many epochs of a tiny CNN that never stops early: mid-training when the signal arrives.
TRAIN = [sys.executable, "manage.py", "train", "--model", "cnn", "--hparams",
         '{"channels": 8, "n_layers": 2}', "--symbols", "BTC-USD", "--start", "2024-01-01",
         "--end", "2024-01-03T02:00", "--epochs", "500", "--patience", "500", "--folds", "2",
         "--window", "32", "--no-progress", "--source", "sim"]


def training_epochs_started() -> bool:
    """Return True once the run is running and has finished an epoch (inside the training loop)."""
    run = TrainingRun.objects.first()
    return run is not None and run.status == RunStatus.RUNNING and bool(run.epochs)


@pytest.mark.parametrize("signum,reason", [(signal.SIGTERM, "stopped by SIGTERM"),
                                           (signal.SIGINT, "interrupted (SIGINT)")])
def test_a_signalled_train_marks_its_run_stopped_and_exits_non_zero(
        subprocess_env, signum, reason):
    proc = subprocess.Popen(TRAIN, cwd=ROOT, env=subprocess_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: training_epochs_started() or proc.poll() is not None, timeout=90,
                 what="a finished epoch", interval=0.2)  # fmt: skip
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("{")]
    assert lines[-1].startswith("CommandError: training") and "Traceback" not in err, err[-3000:]
    run = TrainingRun.objects.get()
    assert run.status == RunStatus.CANCELLED and run.error == reason
    assert run.finished_at is not None and run.model is None
