"""A run (backtest, research study, training, optimisation) is owned by a lock that dies with it.

Whoever executes a run holds ``<kind>:<id>`` (``rrr_site.locks``: the OS or the database frees it
when the process dies) from before the run shows ``running`` until its outcome is stored. A run
still ``running`` while its lock is free has lost its owner (the command or the ``qcluster``
worker killed with SIGKILL, a host gone): ``runs_reap`` marks it failed, so nothing shows running
for ever. ``reap_all`` does so for every kind; the every-minute takeover schedule
(``backtesting.sweep_takeover.sweeps_take_over``) and each kind's next run call it.
"""

from __future__ import annotations

import logging

from django.db.models import QuerySet
from django.utils import timezone

from rrr_site.locks import OwnerLock, owner_lock

logger = logging.getLogger(__name__)

OWNER_DIED = "owner process died"
RUNNING, FAILED = "running", "failed"  # the status values every run model shares
# The kinds of run, each the prefix of its runs' lock names.
BACKTEST, RESEARCH, TRAIN, OPTIMIZE = "backtest-run", "research-run", "train-run", "optimize-run"


def run_lock(kind: str, run_id: int) -> OwnerLock:
    """Return the ownership lock ``<kind>:<run_id>`` (not yet taken)."""
    return owner_lock(f"{kind}:{run_id}")


def runs_reap(running: QuerySet, kind: str) -> list[int]:
    """Fail every run of ``running`` still running whose ``kind`` lock is free; return their ids.

    ``running`` selects the candidates (a model with ``status``, ``error`` and ``finished_at``).
    """
    model = running.model
    reaped = []
    for run_id in list(running.filter(status=RUNNING).values_list("pk", flat=True)):
        lock = run_lock(kind, run_id)
        if not lock.acquire():
            continue  # its owner is alive and running it
        try:
            # While we hold the lock no owner can claim or finish it: running means orphaned.
            done = model.objects.filter(pk=run_id, status=RUNNING).update(
                status=FAILED,
                error=f"{OWNER_DIED} (its lock {kind}:{run_id} was free while running)",
                finished_at=timezone.now(),
            )
        finally:
            lock.release()
        if done:
            logger.warning("%s %s: %s; marked failed", kind, run_id, OWNER_DIED)
            reaped.append(run_id)
    return reaped


def reap_all() -> dict[str, list[int]]:
    """Fail the orphaned runs of every kind; return the ids reaped by kind.

    Reads the models only: no study, training or solver code is imported for it.
    """
    from backtesting.run_owner import backtest_runs_reap
    from models_ml.models import OptimizationRun, TrainingRun
    from research.models import ResearchRun

    return {
        BACKTEST: backtest_runs_reap(),
        RESEARCH: runs_reap(ResearchRun.objects.all(), RESEARCH),
        TRAIN: runs_reap(TrainingRun.objects.all(), TRAIN),
        OPTIMIZE: runs_reap(OptimizationRun.objects.all(), OPTIMIZE),
    }
