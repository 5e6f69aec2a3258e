"""Every path that runs a sweep holds its owner lock: the service takes it, not only the command.

A sweep or walk-forward run through ``sweep_execute``/``walkforward_execute`` directly (a bench,
a script, a test) holds ``backtest-sweep:<id>`` while it works, so the every-minute takeover
never runs it a second time beside its live process; a sweep another process holds is refused
with the run left as it was.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from backtesting import sweep_takeover
from backtesting.choices import RunStatus
from backtesting.models import BacktestRun
from backtesting.services import (
    Costs,
    SweepOwned,
    backtest_run_create,
    parse_space,
    sweep_execute,
    walkforward_execute,
)
from backtesting.tasks import backtest_task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]
START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC)


def sweep_parent(optimize: str = "grid") -> BacktestRun:
    return backtest_run_create(
        strategy="sma_cross", params={}, symbols=["BTC-USD"], timeframe="1h", start=START,
        end=END, costs=Costs(risk={}), optimize=optimize, data_source="sim",
    )  # fmt: skip


def lock_is_free(run_id: int) -> bool:
    """Try the sweep's lock as another process would (its own connection or descriptor)."""
    probe = sweep_takeover.sweep_lock(run_id)
    taken = probe.acquire()
    if taken:
        probe.release()
    return taken


class HeldElsewhere:
    """The sweep's lock held by another owner (its own connection) until the block ends."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.held, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        lock = sweep_takeover.sweep_lock(self.run_id)
        assert lock.acquire()
        self.held.set()
        self.done.wait(60)
        lock.release()

    def __enter__(self) -> HeldElsewhere:
        self.thread.start()
        assert self.held.wait(30)
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join(30)


def test_a_sweep_run_through_the_service_holds_its_lock_while_it_works():
    parent = sweep_parent()
    seen: list[bool] = []

    def progress(done: int, total: int) -> None:  # called while the trials are collected
        seen.append(lock_is_free(parent.pk))
        running = BacktestRun.objects.get(pk=parent.pk).status == RunStatus.RUNNING
        seen.append(not running)

    found = sweep_execute(
        parent=parent, method="grid", space=parse_space("sma_cross", ["fast=5,10", "slow=20,25"]),
        distributed=False, progress=progress,
    )  # fmt: skip
    assert seen and not any(seen), "the lock was free (or the run not running) mid-sweep"
    parent.refresh_from_db()
    assert parent.status == RunStatus.COMPLETED and len(found.trials) == 4
    assert lock_is_free(parent.pk)  # released with the outcome stored
    # While it worked, the takeover found its lock held: nothing was taken over or reaped.
    assert sweep_takeover.sweeps_take_over() == []


def test_a_walk_forward_run_through_the_service_holds_its_lock_while_it_works():
    parent = sweep_parent("walkforward")
    seen: list[bool] = []
    walkforward_execute(
        parent=parent, space=parse_space("sma_cross", ["fast=5,10", "slow=20,25"]), train=60,
        test=30, distributed=False, progress=lambda done, total: seen.append(
            lock_is_free(parent.pk)),
    )  # fmt: skip
    assert seen and not any(seen)
    parent.refresh_from_db()
    assert parent.status == RunStatus.COMPLETED, parent.error
    assert lock_is_free(parent.pk)


@pytest.mark.parametrize("optimize", ["grid", "walkforward"])
def test_a_sweep_another_process_works_is_refused_and_left_as_it_was(optimize):
    parent = sweep_parent(optimize)
    space = parse_space("sma_cross", ["fast=5,10", "slow=20,25"])
    with HeldElsewhere(parent.pk), pytest.raises(SweepOwned, match=f"sweep #{parent.pk}"):
        if optimize == "grid":
            sweep_execute(parent=parent, method="grid", space=space, distributed=False)
        else:
            walkforward_execute(parent=parent, space=space, train=60, test=30, distributed=False)
    parent.refresh_from_db()
    assert parent.status == RunStatus.PENDING and parent.error == ""
    assert not parent.children.exists()


def test_a_second_delivery_of_a_sweep_task_another_worker_works_is_skipped():
    parent = sweep_parent()
    options = {"space": ["fast=5,10", "slow=20,25"]}
    with HeldElsewhere(parent.pk):
        outcome = backtest_task(parent.pk, options)
    assert outcome == {"run": parent.pk, "skipped": "another worker is working this sweep"}
    parent.refresh_from_db()
    assert parent.status == RunStatus.PENDING and parent.task_options == options
    assert backtest_task(parent.pk, options)["status"] == RunStatus.COMPLETED  # once it is free


def test_a_taker_must_pass_the_lock_it_holds_not_another():
    parent = sweep_parent()
    BacktestRun.objects.filter(pk=parent.pk).update(status=RunStatus.RUNNING)
    space = parse_space("sma_cross", ["fast=5,10", "slow=20,25"])
    other = sweep_takeover.sweep_lock(parent.pk + 1000)
    assert other.acquire()
    try:
        with pytest.raises(ValueError, match="not backtest-sweep"):
            sweep_execute(parent=parent, method="grid", space=space, distributed=False,
                          resume=True, lock=other)  # fmt: skip
    finally:
        other.release()
    parent.refresh_from_db()
    assert parent.status == RunStatus.RUNNING  # untouched: not failed by a caller's mistake
