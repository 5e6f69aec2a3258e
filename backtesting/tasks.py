"""django-q2 task functions for backtests (load by id, call a service, record the outcome)."""

from __future__ import annotations

from backtesting.models import BacktestRun
from backtesting.services import _child_task, backtest_execute, parse_space, sweep_execute


def backtest_task(run_id: int, options: dict | None = None) -> dict:
    """Run a queued backtest (or sweep parent) by id; return its status and metrics."""
    options = options or {}
    run = BacktestRun.objects.get(pk=run_id)
    if run.optimize in {"grid", "random", "genetic"}:
        sweep_execute(
            parent=run,
            method=run.optimize,
            space=parse_space(run.strategy, options.get("space", [])),
            objective=options.get("objective", "sharpe"),
            n_iter=options.get("trials", 20),
            report=options.get("report"),
            montecarlo=options.get("montecarlo", 0),
        )
    else:
        backtest_execute(
            run=run, report=options.get("report"), montecarlo=options.get("montecarlo", 0)
        )
    run.refresh_from_db()
    return {"run": run.pk, "status": run.status, "metrics": run.metrics}


backtest_child_task = _child_task  # one parameter set of a sweep (enqueued by TaskEvaluator)
