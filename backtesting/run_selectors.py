"""Reads of stored backtest runs for the API (list and one run with its trades)."""

from __future__ import annotations

from django.db.models import QuerySet

from backtesting.models import BacktestRun, BacktestTrade

MAX_TRADES = 1000


def backtest_runs(
    *, status: str | None = None, strategy: str | None = None, parent: int | None = None
) -> QuerySet[BacktestRun]:
    """Return runs (top-level ones, or the trials of sweep ``parent``), newest first."""
    runs = BacktestRun.objects.defer("equity_curve", "params", "risk")
    runs = runs.filter(parent_id=parent) if parent is not None else runs.filter(parent__isnull=True)
    if status:
        runs = runs.filter(status=status)
    if strategy:
        runs = runs.filter(strategy=strategy)
    return runs


def backtest_run(*, pk: int) -> BacktestRun | None:
    """Return one run, or None."""
    return BacktestRun.objects.filter(pk=pk).first()


def backtest_trades(*, run: BacktestRun, limit: int = MAX_TRADES) -> tuple[list, int]:
    """Return the run's first ``limit`` trades by entry time and how many it has."""
    trades = BacktestTrade.objects.filter(run=run).order_by("entry_ts", "pk")
    return list(trades[:limit]), trades.count()


def backtest_state(*, pk: int) -> dict | None:
    """Return a run's state for polling (a sweep's trials counted), or None."""
    from backtesting.choices import RunStatus

    run = (
        BacktestRun.objects.filter(pk=pk)
        .only("status", "progress", "optimize", "error", "created_at", "started_at", "finished_at")
        .first()
    )
    if run is None:
        return None
    trials = BacktestRun.objects.filter(parent_id=pk)
    return {
        "id": run.pk,
        "status": run.status,
        "progress": run.progress,
        "optimize": run.optimize,
        "trials": trials.count(),
        "trials_done": trials.filter(status=RunStatus.COMPLETED).count(),
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }
