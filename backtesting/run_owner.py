"""A single backtest run is owned by a lock that dies with its process.

Whoever runs a single (not a sweep's) backtest holds ``backtest-run:<id>`` from before its claim
until its outcome is stored (``rrr_site.locks``: the OS or the database frees it when the process
dies). A run still ``running`` while its lock is free has lost its owner (``backtest`` or a
``qcluster`` worker killed with SIGKILL, a host gone): ``backtest_runs_reap`` marks it failed, so
it is never shown running for ever. Sweeps and their trials have their own locks and takeover
(``backtesting.sweep_takeover``).
"""

from __future__ import annotations

import logging

from django.utils import timezone

from backtesting.choices import RunStatus
from backtesting.models import BacktestRun
from backtesting.sweep_takeover import SWEEP_METHODS
from rrr_site.locks import OwnerLock, owner_lock

logger = logging.getLogger(__name__)

OWNER_DIED = "owner process died"


def run_lock(run_id: int) -> OwnerLock:
    """Return the ownership lock of single backtest run ``run_id`` (not yet taken)."""
    return owner_lock(f"backtest-run:{run_id}")


def backtest_runs_reap() -> list[int]:
    """Fail every running single run whose owner died (its lock is free); return their ids."""
    reaped = []
    running = BacktestRun.objects.filter(status=RunStatus.RUNNING, parent__isnull=True).exclude(
        optimize__in=SWEEP_METHODS
    )
    for run_id in list(running.values_list("pk", flat=True)):
        lock = run_lock(run_id)
        if not lock.acquire():
            continue  # its owner is alive and running it
        try:
            # While we hold the lock no owner can claim or finish it: running means orphaned.
            done = BacktestRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
                status=RunStatus.FAILED,
                error=f"{OWNER_DIED} (its lock backtest-run:{run_id} was free while running)",
                finished_at=timezone.now(),
            )
        finally:
            lock.release()
        if done:
            logger.warning("backtest run %s: %s; marked failed", run_id, OWNER_DIED)
            reaped.append(run_id)
    return reaped
