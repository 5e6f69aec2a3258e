"""A ``qcluster`` told to stop (SIGTERM to its main process) finishes the trial it is running,
records it, and exits with every process of its group: no hang, nothing lost or left behind
(a real cluster on the Redis broker; ``tests/qcluster_process.py`` says why only the main
process is signalled)."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest

from backtesting import services
from backtesting.choices import RunStatus
from backtesting.services import Costs, backtest_run_create
from tests.polling import wait_for
from tests.qcluster_process import group_members, qcluster_log, qcluster_stop

pytestmark = [pytest.mark.timeout(300)]
START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC)

HELD = """
import time
from pathlib import Path

from trading.engine.params import IntParam
from trading.engine.strategy import Strategy


class Held(Strategy):
    parameters = {{"n": IntParam(1, 1, 5)}}

    def on_bar(self, bar, ctx):
        Path({entered!r}).touch()
        deadline = time.monotonic() + 120
        while not Path({release!r}).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
"""


@pytest.mark.django_db(transaction=True)
def test_a_stopped_qcluster_finishes_its_trial_and_exits_with_all_its_processes(
    qclusters, tmp_path
):
    entered, release = tmp_path / "entered", tmp_path / "release"
    strategy = tmp_path / "held.py"
    strategy.write_text(HELD.format(entered=str(entered), release=str(release)))
    parent = backtest_run_create(
        strategy=f"{strategy}:Held", params={}, symbols=["BTC-USD"], timeframe="1h",
        start=START, end=END, costs=Costs(risk={}), optimize="grid", data_source="sim",
    )  # fmt: skip
    trial = services.TaskEvaluator(parent)._create([{"n": 1}])[0]
    cluster = qclusters.start("qcluster", LOG_LEVEL="INFO")  # INFO: the sentinel's stop lines
    try:
        qclusters.wait_running(cluster)
        services.TaskEvaluator(parent)._enqueue_id(trial.pk)
        wait_for(lambda: entered.exists() or cluster.poll() is not None, 120, "the trial")
        assert cluster.poll() is None, qcluster_log(cluster)

        def release_once_stopping() -> None:  # the trial is still running when the stop begins
            wait_for(lambda: "stopping cluster processes" in qcluster_log(cluster, 10**6), 60,
                     "the sentinel to start stopping")  # fmt: skip
            release.touch()

        releaser = threading.Thread(target=release_once_stopping)
        releaser.start()
        hung = qcluster_stop(cluster, grace=120)
        releaser.join(10)
    finally:
        release.touch()  # a cluster still running is stopped by the fixture
    assert hung is None, hung
    assert cluster.returncode == 0 and group_members(cluster.pid) == []
    trial.refresh_from_db()
    assert trial.status == RunStatus.COMPLETED, (trial.error, qcluster_log(cluster))
    assert "sharpe" in trial.metrics and "claimed_by" not in trial.metrics


# A stand-in for a cluster that does not stop: its main process and a "worker" child both ignore
# SIGTERM, and it logs the child's pid the way django-q2 does.
DEAF = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
print(f"Process-0123abcd ready for work at {child.pid}", file=sys.stderr, flush=True)
print("Processed 'backtesting.tasks.backtest_child_task' (a-b-c-d)", file=sys.stderr, flush=True)
time.sleep(600)
"""


def test_a_cluster_that_ignores_the_stop_is_killed_and_the_report_says_which_process_hung(
    tmp_path,
):
    log = tmp_path / "deaf.log"
    with log.open("w") as stderr:
        deaf = subprocess.Popen([sys.executable, "-c", DEAF], stderr=stderr,
                                start_new_session=True)  # fmt: skip
    deaf.log = log
    wait_for(lambda: "Processed" in log.read_text(), 60, "the stand-in to start its child")
    worker = int(log.read_text().split("ready for work at ")[1].split()[0])
    assert group_members(deaf.pid) == sorted([deaf.pid, worker])
    report = qcluster_stop(deaf, grace=1)
    assert report is not None
    assert f"qcluster {deaf.pid} still running 1 s after SIGTERM" in report
    assert f"main {deaf.pid} (waiting in" in report and f"worker {worker} (waiting in" in report
    assert "a worker is still running its task" in report
    assert "last log line: Processed 'backtesting.tasks.backtest_child_task'" in report
    assert "its process group was killed (SIGKILL)" in report
    assert deaf.returncode == -9 and group_members(deaf.pid) == []
