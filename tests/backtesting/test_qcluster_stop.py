"""A ``qcluster`` told to stop (SIGTERM to its main process) finishes the trial it is running,
records it, and exits with every process of its group: no hang, nothing lost or left behind
(a real cluster on the Redis broker; ``tests/qcluster_process.py`` says why only the main
process is signalled)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.conf import settings

from backtesting import services
from backtesting.choices import RunStatus
from backtesting.services import Costs, backtest_run_create
from tests.polling import wait_for
from tests.qcluster_process import (
    group_members,
    qcluster_log,
    qcluster_running,
    qcluster_start,
    qcluster_stop,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (the Redis broker)"),
]
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


def test_a_stopped_qcluster_finishes_its_trial_and_exits_with_all_its_processes(
    subprocess_env, tmp_path
):
    from django_q.brokers import get_broker

    get_broker().purge_queue()  # leftovers of another run on this Redis db
    entered, release = tmp_path / "entered", tmp_path / "release"
    strategy = tmp_path / "held.py"
    strategy.write_text(HELD.format(entered=str(entered), release=str(release)))
    parent = backtest_run_create(
        strategy=f"{strategy}:Held", params={}, symbols=["BTC-USD"], timeframe="1h",
        start=START, end=END, costs=Costs(risk={}), optimize="grid", data_source="sim",
    )  # fmt: skip
    trial = services.TaskEvaluator(parent)._create([{"n": 1}])[0]
    env = {**subprocess_env, "Q_SYNC": "false", "Q_WORKERS": "1", "REDIS_URL": settings.REDIS_URL,
           "SECRET_KEY": settings.SECRET_KEY, "LOG_LEVEL": "INFO"}  # fmt: skip
    env.pop("PYTEST_VERSION", None)  # a production cluster, not one configured for tests
    cluster = qcluster_start(env, tmp_path / "qcluster.log")
    try:
        wait_for(lambda: qcluster_running(cluster) or cluster.poll() is not None, 180,
                 "the cluster to start")  # fmt: skip
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
        release.touch()
        if cluster.poll() is None:
            qcluster_stop(cluster, grace=10)
    assert hung is None, hung
    assert cluster.returncode == 0 and group_members(cluster.pid) == []
    trial.refresh_from_db()
    assert trial.status == RunStatus.COMPLETED, (trial.error, qcluster_log(cluster))
    assert "sharpe" in trial.metrics and "claimed_by" not in trial.metrics
