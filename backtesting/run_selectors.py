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
