"""A single backtest run is owned by a lock that dies with its process.

Whoever runs a single (not a sweep's) backtest holds ``backtest-run:<id>`` from before its claim
until its outcome is stored (``rrr_site.run_owner``, shared with research, training and
optimisation runs). A run still ``running`` while its lock is free has lost its owner
(``backtest`` or a ``qcluster`` worker killed with SIGKILL, a host gone): ``backtest_runs_reap``
marks it failed, so it is never shown running for ever. Sweeps and their trials have their own
locks and takeover (``backtesting.sweep_takeover``).
"""

from __future__ import annotations

from backtesting.choices import RunStatus
from backtesting.models import BacktestRun
from backtesting.sweep_takeover import SWEEP_METHODS
from rrr_site import run_owner
from rrr_site.locks import OwnerLock
from rrr_site.run_owner import OWNER_DIED

__all__ = ["OWNER_DIED", "backtest_runs_reap", "run_lock"]

KIND = run_owner.BACKTEST


def run_lock(run_id: int) -> OwnerLock:
    """Return the ownership lock of single backtest run ``run_id`` (not yet taken)."""
    return run_owner.run_lock(KIND, run_id)


def backtest_runs_reap() -> list[int]:
    """Fail every running single run whose owner died (its lock is free); return their ids."""
    running = BacktestRun.objects.filter(status=RunStatus.RUNNING, parent__isnull=True).exclude(
        optimize__in=SWEEP_METHODS
    )
    return run_owner.runs_reap(running, KIND)
