"""A sweep whose parent process dies is taken over by a worker: one trial row per (sweep,
parameters, range) in the database, a live parent is never taken over, a SIGKILLed one is
finished with every trial counted once (a real parent process and ``qcluster`` on Redis)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db import IntegrityError, transaction

from backtesting import services, sweep_takeover
from backtesting.choices import RunStatus
from backtesting.models import BacktestRun
from backtesting.services import Costs, backtest_run_create
from tests.polling import wait_for
from tests.qcluster_process import qcluster_log, qcluster_stop

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 12, tzinfo=UTC)
SPACE = ["fast=5:30:5", "slow=40:60:20"]  # 12 trials


def sweep_parent(timeframe: str = "1m") -> BacktestRun:
    return backtest_run_create(
        strategy="sma_cross", params={}, symbols=["BTC-USD"], timeframe=timeframe,
        start=START, end=END, costs=Costs(risk={}), optimize="grid", data_source="sim",
    )  # fmt: skip


def test_the_database_refuses_a_second_row_for_a_trial_and_the_sweep_finds_the_first():
    parent = sweep_parent("1h")
    evaluator = services.TaskEvaluator(parent, distributed=False)
    first = evaluator._create([{"slow": 20, "fast": 5}])[0]
    with pytest.raises(IntegrityError), transaction.atomic():
        BacktestRun.objects.create(
            parent=parent, strategy="sma_cross", params={"fast": 5, "slow": 20},
            symbols=["BTC-USD"], timeframe="1h", start=START, end=END,
        )  # fmt: skip
    # A second parent process (a taker) creating it meanwhile: the conflict returns that row.
    other = services.TaskEvaluator(parent, distributed=False)
    assert other._create_one({"fast": 5, "slow": 20}, START, END).pk == first.pk
    assert parent.children.count() == 1


def test_the_takeover_is_scheduled_every_minute():
    from django_q.models import Schedule

    assert sweep_takeover.sweeps_schedule_ensure() is True
    assert sweep_takeover.sweeps_schedule_ensure() is False
    schedule = Schedule.objects.get(name=sweep_takeover.TAKEOVER_SCHEDULE)
    assert (schedule.func, schedule.minutes, schedule.repeats) == (
        "backtesting.sweep_takeover.sweeps_take_over",
        1,
        -1,
    )
    module, name = schedule.func.rsplit(".", 1)
    assert callable(getattr(__import__(module, fromlist=[name]), name))


def test_a_live_parent_is_not_taken_over_a_dead_ones_sweep_is_finished_here():
    parent = sweep_parent("1h")
    options = {"space": ["fast=5:10:5", "slow=20:30:10"]}
    BacktestRun.objects.filter(pk=parent.pk).update(
        status=RunStatus.RUNNING, started_at=datetime(2026, 1, 1, tzinfo=UTC),
        task_options=options,
    )  # fmt: skip
    held, release = threading.Event(), threading.Event()

    def live_parent() -> None:  # its own lock connection, as the parent's process has
        lock = sweep_takeover.sweep_lock(parent.pk)
        assert lock.acquire()
        held.set()
        release.wait(30)
        lock.release()

    owner = threading.Thread(target=live_parent)
    owner.start()
    try:
        assert held.wait(30)
        assert sweep_takeover.sweeps_take_over() == []
        parent.refresh_from_db()
        assert parent.status == RunStatus.RUNNING and parent.started_at.year == 2026
    finally:
        release.set()
        owner.join(30)
    assert sweep_takeover.sweeps_take_over() == [parent.pk]  # its owner is gone
    parent.refresh_from_db()
    assert parent.status == RunStatus.COMPLETED, parent.error
    assert parent.children.count() == 4 and parent.metrics["search"]["best_params"]
    assert sweep_takeover.sweeps_take_over() == []  # finished: nothing left to take


PARENT = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
import django
django.setup()
from backtesting.tasks import backtest_task
backtest_task(int(sys.argv[1]), {"space": sys.argv[2:]})
"""


def test_a_sigkilled_sweep_parent_is_taken_over_and_every_trial_counts_once(
    qclusters, monkeypatch, tmp_path
):
    monkeypatch.setattr(services, "REDISPATCH_SECONDS", 1.0)
    monkeypatch.setitem(settings.Q_CLUSTER, "sync", False)  # the taker dispatches, as a worker
    services.bars_for(symbols=["BTC-USD"], timeframe="1m", start=START, end=END, source="sim")
    worker = qclusters.start("worker")
    parent = sweep_parent()
    with (tmp_path / "parent.log").open("w") as log:
        dispatcher = subprocess.Popen(
            [sys.executable, "-c", PARENT, str(parent.pk), *SPACE],
            cwd=ROOT,
            env=qclusters.env,  # the parent process runs as a worker would
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:

        def some_trials_done() -> bool:
            assert dispatcher.poll() is None, (tmp_path / "parent.log").read_text()[-3000:]
            return parent.children.filter(status=RunStatus.COMPLETED).count() >= 2

        try:
            wait_for(some_trials_done, 180, "two trials completed")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {qcluster_log(worker)}") from None
        assert sweep_takeover.sweeps_take_over() == []  # the parent is alive: left alone
        dispatcher.send_signal(signal.SIGKILL)
        dispatcher.wait(10)
        parent.refresh_from_db()
        assert parent.status == RunStatus.RUNNING and parent.task_options == {"space": SPACE}
        done_before = {
            t.pk: t.finished_at for t in parent.children.filter(status=RunStatus.COMPLETED)
        }
        assert len(done_before) < 12, "the sweep finished before the kill: nothing tested"
        assert sweep_takeover.sweeps_take_over() == [parent.pk]
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
        qcluster_stop(worker, grace=60)
    parent.refresh_from_db()
    assert parent.status == RunStatus.COMPLETED, parent.error
    trials = list(parent.children.all())
    assert len(trials) == 12 and {t.status for t in trials} == {RunStatus.COMPLETED}
    assert Counter(repr(sorted(t.params.items())) for t in trials).most_common(1)[0][1] == 1
    for trial in trials:  # a trial finished before the kill was found, never run again
        if trial.pk in done_before:
            assert trial.finished_at == done_before[trial.pk]
    assert parent.metrics["search"]["best_params"]
