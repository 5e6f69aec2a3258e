"""A sweep whose parent process died is taken over by any worker.

A sweep's (or walk-forward's) parent is the task that dispatches its trials and collects their
results. It holds the owner lock ``backtest-sweep:<id>`` (``rrr_site.locks``: a PostgreSQL
advisory lock or a lock file, released by the kernel or the database when the process dies)
for as long as it works, and its search options are stored on the run (``task_options``).

``sweeps_take_over`` runs every minute as a django-q2 schedule on whichever worker is free. A
running parent whose lock is free has lost its process: the worker takes the lock, claims the
run with a conditional update (one taker wins) and runs the sweep again from its options. The
search is deterministic and its trials are rows unique per (sweep, parameters, range), so the
rerun finds the finished trials' results, sends only the unfinished ones again (each runs once,
under its own trial lock) and then completes the parent as its first owner would have.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from backtesting.choices import RunStatus
from backtesting.models import BacktestRun

logger = logging.getLogger(__name__)

SWEEP_METHODS = ("grid", "random", "genetic", "walkforward")
TAKEOVER_SCHEDULE = "backtesting: take over sweeps whose parent died"


def sweep_lock(run_id: int):
    """Return the owner lock that the process working a sweep's parent holds."""
    from rrr_site.locks import owner_lock

    return owner_lock(f"backtest-sweep:{run_id}")


def is_sweep(run: BacktestRun) -> bool:
    """Return True when ``run`` is the parent of a sweep or walk-forward."""
    return run.parent_id is None and run.optimize in SWEEP_METHODS


def sweep_run_owned(
    run: BacktestRun, options: dict[str, Any], execute: Callable[[], Any]
) -> dict[str, Any] | None:
    """Store a sweep parent's options (a taker reruns it from them), then ``execute`` it.

    The service it calls works the sweep under its owner lock (``services.sweep_owned``).
    Returns None when it ran, or the reason it did not (another live process works it).
    """
    from backtesting.services import SweepOwned

    BacktestRun.objects.filter(pk=run.pk).update(task_options=options)
    try:
        execute()
    except SweepOwned:
        return {"run": run.pk, "skipped": "another worker is working this sweep"}
    return None


def sweeps_take_over() -> list[int]:
    """Take over every running sweep whose parent's process died; return their ids.

    Single runs whose owner died cannot be resumed: they are marked failed, as are research,
    training and optimisation runs (``rrr_site.run_owner.reap_all``).
    """
    from rrr_site.run_owner import reap_all

    reap_all()
    candidates = BacktestRun.objects.filter(
        status=RunStatus.RUNNING, parent__isnull=True, optimize__in=SWEEP_METHODS
    ).values_list("pk", flat=True)
    return [pk for pk in list(candidates) if sweep_take_over(pk)]


def sweep_take_over(run_id: int) -> bool:
    """Finish one orphaned sweep here if its lock is free and this process wins the claim."""
    from backtesting.tasks import execute_run

    lock = sweep_lock(run_id)
    if not lock.acquire():
        return False  # its parent (or another taker) is alive
    try:
        row = BacktestRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).first()
        if row is None or not is_sweep(row):
            return False
        # Conditional: of two workers that both saw the lock free, one moves started_at on.
        claimed = BacktestRun.objects.filter(
            pk=run_id, status=RunStatus.RUNNING, started_at=row.started_at
        ).update(started_at=timezone.now())
        if not claimed:
            return False
        logger.warning(
            "sweep %s: its parent process died; taken over by pid %s on %s",
            run_id,
            os.getpid(),
            socket.gethostname(),
        )
        row.refresh_from_db()
        execute_run(row, row.task_options or {}, resume=True, lock=lock)
        return True
    finally:
        lock.release()


def sweeps_schedule_ensure() -> bool:
    """Create the every-minute django-q2 schedule of ``sweeps_take_over``; True if created."""
    from monitoring.schedules import schedule_ensure

    return schedule_ensure(
        TAKEOVER_SCHEDULE, "backtesting.sweep_takeover.sweeps_take_over", every_minute=True
    )
