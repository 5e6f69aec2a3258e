"""Sweeps across workers: bars read once per process, each trial counted once, killed workers
lose nothing (real ``qcluster`` processes on the Redis broker)."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from backtesting import services, trial_bars
from backtesting.choices import RunStatus
from backtesting.models import BacktestRun
from backtesting.services import Costs, backtest_run_create, parse_space, sweep_execute
from rrr_site.locks import owner_lock
from tests.polling import wait_for
from tests.qcluster_process import qcluster_log, qcluster_stop, qcluster_stop_all

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC)


def sweep_parent(timeframe: str = "1h", end: datetime = END) -> BacktestRun:
    """A pending grid-sweep parent of sma_cross on the simulated market's bars, no risk."""
    return backtest_run_create(
        strategy="sma_cross",
        params={},
        symbols=["BTC-USD"],
        timeframe=timeframe,
        start=START,
        end=end,
        costs=Costs(risk={}),
        optimize="grid",
        data_source="sim",
    )


def test_a_sweeps_trials_read_the_bars_once_per_process_and_never_count_twice():
    trial_bars.CACHE.clear()
    parent = sweep_parent()
    space = parse_space("sma_cross", ["fast=5:15:5", "slow=20:40:10"])
    found = sweep_execute(parent=parent, method="grid", space=space, distributed=False)
    children = list(parent.children.order_by("pk"))
    assert len(children) == len(found.trials) == 9
    # The parent's full run reads its bars itself; the nine trials read them once between them.
    assert trial_bars.CACHE.info.loads == 1 and trial_bars.CACHE.info.hits == 8
    trial = children[0]
    stored = (trial.metrics, trial.equity_curve, trial.finished_at)
    # A duplicate delivery of a finished trial does nothing: same row, same figures.
    assert services._child_task(trial.pk)["skipped"] == "not pending"
    trial.refresh_from_db()
    assert (trial.metrics, trial.equity_curve, trial.finished_at) == stored
    # The same parameter set asked again by this sweep is the same trial, not a second row.
    evaluator = services.TaskEvaluator(parent, distributed=False)
    again = evaluator._create([trial.params])
    assert [t.pk for t in again] == [trial.pk]
    assert parent.children.count() == 9


def test_a_trial_left_running_by_a_dead_worker_is_taken_over_and_one_a_live_worker_holds_is_not():
    parent = sweep_parent()
    trial = services.TaskEvaluator(parent, distributed=False)._create([{"fast": 5, "slow": 20}])[0]
    BacktestRun.objects.filter(pk=trial.pk).update(status=RunStatus.RUNNING)  # its worker died
    held = threading.Event()
    release = threading.Event()

    def live_worker() -> None:  # another worker (its own lock connection) holds the trial
        lock = owner_lock(f"backtest-trial:{trial.pk}")
        assert lock.acquire()
        held.set()
        release.wait(30)
        lock.release()

    worker = threading.Thread(target=live_worker)
    worker.start()
    try:
        assert held.wait(30)
        assert services._child_task(trial.pk)["skipped"] == "another worker is running this trial"
        trial.refresh_from_db()
        assert trial.status == RunStatus.RUNNING
    finally:
        release.set()
        worker.join(30)
    result = services._child_task(trial.pk)  # the owner is gone: the lock is free
    trial.refresh_from_db()
    assert trial.status == RunStatus.COMPLETED and result["run"] == trial.pk
    assert "sharpe" in trial.metrics and "claimed_by" not in trial.metrics


def test_collecting_the_trials_reads_their_statuses_and_metrics_never_their_equity_curves():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    parent = sweep_parent()
    evaluator = services.TaskEvaluator(parent, distributed=False)
    trials = evaluator._create([{"fast": 5, "slow": 20}, {"fast": 10, "slow": 30}])
    for trial in trials:
        services._child_task(trial.pk)
    with CaptureQueriesContext(connection) as queries:
        collected = evaluator._collect([t.pk for t in trials])
    for trial, metrics in zip(trials, collected, strict=True):
        trial.refresh_from_db()
        assert len(trial.equity_curve) > 100  # stored for the sweep's PBO, read once after
        assert metrics["sharpe"] == pytest.approx(trial.metrics["sharpe"])
    assert not [q["sql"] for q in queries.captured_queries if "equity_curve" in q["sql"]]


def test_a_parent_running_in_a_worker_runs_pending_trials_itself_so_no_worker_is_needed():
    from django_q.brokers import get_broker

    parent = sweep_parent()
    space = parse_space("sma_cross", ["fast=5:10:5", "slow=20:30:10"])
    try:
        # Distributed with no cluster at all: only the parent itself can run the trials.
        found = sweep_execute(parent=parent, method="grid", space=space, distributed=True,
                              helps=True)  # fmt: skip
    finally:
        get_broker().purge_queue()  # the trials' copies nobody took
    parent.refresh_from_db()
    assert parent.status == RunStatus.COMPLETED, parent.error
    trials = list(parent.children.all())
    assert len(trials) == len(found.trials) == 4
    assert {t.status for t in trials} == {RunStatus.COMPLETED}


GIVE_UP = """
from pathlib import Path

from trading.engine.params import IntParam
from trading.engine.strategy import Strategy


class GiveUp(Strategy):
    parameters = {{"n": IntParam(1, 1, 5)}}
    bars = 0

    def on_bar(self, bar, ctx):
        self.bars += 1
        if self.bars == 5_000:  # the sweep stops meanwhile and gives this trial up
            from backtesting.models import BacktestRun

            trial = int(Path({trial!r}).read_text())
            BacktestRun.objects.filter(pk=trial).update(status="failed", error="sweep stopped: X")
        if self.bars >= 5_000:
            Path({seen!r}).write_text(str(self.bars))
"""


def test_a_trial_given_up_by_its_sweep_stops_within_a_tenth_of_its_bars(tmp_path):
    end = datetime(2024, 1, 31, tzinfo=UTC)  # 43,200 1m bars: a mark every 4,320
    trial_file, seen = tmp_path / "trial", tmp_path / "seen"
    strategy = tmp_path / "give_up.py"
    strategy.write_text(GIVE_UP.format(trial=str(trial_file), seen=str(seen)))
    parent = backtest_run_create(
        strategy=f"{strategy}:GiveUp", params={}, symbols=["BTC-USD"], timeframe="1m",
        start=START, end=end, costs=Costs(risk={}), optimize="grid", data_source="sim",
    )  # fmt: skip
    trial = services.TaskEvaluator(parent, distributed=False)._create([{"n": 1}])[0]
    trial_file.write_text(str(trial.pk))
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries, pytest.raises(services.BacktestCancelled):
        services._child_task(trial.pk)
    sets = [q["sql"].split(" SET ")[1].split(" WHERE ")[0] for q in queries.captured_queries
            if q["sql"].startswith('UPDATE "backtesting_backtestrun" SET')]  # fmt: skip
    marks = [clause for clause in sets if clause.startswith('"progress" =') and "," not in clause]
    bars = len(services.bars_for(symbols=["BTC-USD"], timeframe="1m", start=START, end=end,
                                 source="sim")[0])  # fmt: skip
    stopped_at = int(seen.read_text())
    # It stopped at its next progress mark: ten marks a trial, not a hundred writes.
    every = bars // services.TRIAL_PROGRESS_MARKS
    assert 5_000 <= stopped_at <= 5_000 + every < bars
    assert len(marks) == stopped_at // every  # the last one found the trial given up
    trial.refresh_from_db()
    assert (trial.status, trial.error) == (RunStatus.FAILED, "sweep stopped: X")


# -- real qcluster processes on Redis --------------------------------------------------------------


def claimed_pid(trial: BacktestRun) -> int:
    """Return the process id that claimed a running trial."""
    label = trial.metrics.get("claimed_by", "")
    return int(label.split()[1]) if label.startswith("pid ") else -1


def group_of(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1


def test_a_qcluster_killed_mid_sweep_loses_no_trial_and_counts_none_twice(qclusters, monkeypatch):
    monkeypatch.setattr(services, "REDISPATCH_SECONDS", 1.0)
    end = datetime(2024, 1, 12, tzinfo=UTC)
    services.bars_for(symbols=["BTC-USD"], timeframe="1m", start=START, end=end, source="sim")
    doomed, survivor = qclusters.start("doomed"), qclusters.start("survivor")
    parent = sweep_parent("1m", end)
    space = parse_space("sma_cross", ["fast=5:30:5", "slow=40:60:20"])
    outcome: dict = {}

    def run_sweep() -> None:
        try:
            outcome["found"] = sweep_execute(
                parent=parent, method="grid", space=space, distributed=True
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread below
            outcome["error"] = exc
        finally:
            from django.db import connection

            connection.close()

    sweeper = threading.Thread(target=run_sweep)
    sweeper.start()
    try:
        in_flight: list[int] = []

        def doomed_is_running_a_trial() -> bool:
            running = BacktestRun.objects.filter(parent=parent, status=RunStatus.RUNNING)
            in_flight[:] = [t.pk for t in running if group_of(claimed_pid(t)) == doomed.pid]
            return bool(in_flight) or "error" in outcome

        try:
            wait_for(doomed_is_running_a_trial, 120, "a trial running on the doomed qcluster")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {qcluster_log(doomed)}") from None
        os.killpg(doomed.pid, signal.SIGKILL)  # the cluster and its workers, mid-trial
        doomed.wait(10)
        sweeper.join(120)
        assert not sweeper.is_alive(), "the sweep never finished: " + qcluster_log(survivor)
        assert "error" not in outcome, outcome.get("error")
    finally:
        qcluster_stop_all([doomed, survivor], grace=60)
    trials = list(parent.children.all())
    assert len(trials) == len(outcome["found"].trials) == 12
    assert Counter(repr(sorted(t.params.items())) for t in trials).most_common(1)[0][1] == 1
    assert {t.status for t in trials} == {RunStatus.COMPLETED}
    retried = [t for t in trials if t.pk in in_flight]
    assert retried and all("sharpe" in t.metrics for t in retried)
    parent.refresh_from_db()
    assert parent.status == RunStatus.COMPLETED
    assert parent.metrics["search"]["best_params"] == outcome["found"].best.params
    assert Decimal(parent.metrics["final_equity"]) > 0


def trial_results(parent: BacktestRun, expected: int) -> list[dict]:
    """Return the stored task results of the trials that ran (copies that skipped left out),
    once the clusters' monitors have saved ``expected`` of them."""
    from django_q.models import Task

    def ran() -> list[dict]:
        results = Task.objects.filter(group=parent.task_group, success=True)
        return [r.result for r in results if isinstance(r.result, dict) and "pid" in r.result]

    wait_for(lambda: len(ran()) >= expected, 60, f"{expected} trial results stored")
    return ran()


def test_a_sweeps_trials_and_walk_forward_windows_spread_over_the_clusters_bars_read_once_each(
    qclusters,
):
    end = datetime(2024, 1, 12, tzinfo=UTC)
    services.bars_for(symbols=["BTC-USD"], timeframe="1m", start=START, end=end, source="sim")
    clusters = [qclusters.start(f"q{i}") for i in range(2)]
    space = parse_space("sma_cross", ["fast=5:30:5", "slow=40:60:20"])  # 12 sets
    try:
        qclusters.wait_running(*clusters)
        sweep = sweep_parent("1m", end)
        sweep_execute(parent=sweep, method="grid", space=space, distributed=True)
        walk = sweep_parent("1m", end)
        BacktestRun.objects.filter(pk=walk.pk).update(optimize="walkforward")
        walk.refresh_from_db()
        wf = services.walkforward_execute(
            parent=walk, space=space, train=4000, test=3000, distributed=True
        )
        ran = {"sweep": trial_results(sweep, 12), "walk": trial_results(walk, 12 * len(wf.windows))}
        groups = {pid: group_of(pid) for r in ran.values() for pid in {t["pid"] for t in r}}
    finally:
        hung = qcluster_stop_all(clusters, grace=60)
    assert hung == [None, None], hung
    assert len(wf.windows) >= 2 and walk.children.values("start").distinct().count() >= 2
    for name, results in ran.items():
        pids = Counter(t["pid"] for t in results)
        # Every trial ran in a worker of one of the two clusters, and both took some.
        assert {groups[pid] for pid in pids} == {c.pid for c in clusters}, (name, groups)
        # Each worker process read the sweep's bars from the database once; the rest, walk-
        # forward windows included (slices of the sweep's range), came from its cache.
        reads = Counter(t["pid"] for t in results if t["bars"] == "database")
        assert reads == Counter(dict.fromkeys(pids, 1)), (name, reads, pids)
        assert len({t["run"] for t in results}) == len(results)  # no trial counted twice


def test_an_async_sweep_finishes_on_a_cluster_whose_only_worker_runs_its_parent(qclusters):
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    cluster = qclusters.start("q")
    parent = sweep_parent()
    options = {"space": ["fast=5:10:5", "slow=20:30:10"]}
    try:
        qclusters.wait_running(cluster)
        # The parent takes the cluster's one worker slot; its trials have no other to run on.
        async_task("backtesting.tasks.backtest_task", parent.pk, options, sync=False)

        def finished() -> bool:
            assert cluster.poll() is None, qcluster_log(cluster)
            status = BacktestRun.objects.get(pk=parent.pk).status
            return status in {RunStatus.COMPLETED, RunStatus.FAILED}

        try:
            wait_for(finished, 120, "the sweep to finish")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {qcluster_log(cluster)}") from None
    finally:
        hung = qcluster_stop(cluster, grace=60)
        get_broker().purge_queue()
    assert hung is None, hung
    parent.refresh_from_db()
    assert parent.status == RunStatus.COMPLETED, parent.error
    trials = list(parent.children.all())
    assert len(trials) == 4 and {t.status for t in trials} == {RunStatus.COMPLETED}
