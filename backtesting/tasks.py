"""django-q2 task functions for backtests (load by id, call a service, record the outcome)."""

from __future__ import annotations

from backtesting.choices import RunStatus
from backtesting.models import BacktestRun
from backtesting.services import (
    BacktestCancelled,
    RunNotPending,
    _child_task,
    backtest_execute,
    parse_space,
    run_fail,
    sweep_execute,
    walkforward_execute,
)
from backtesting.sweep_takeover import is_sweep, sweep_run_owned
from rrr_site.locks import OwnerLock


def backtest_task(run_id: int, options: dict | None = None) -> dict:
    """Run a queued backtest (or sweep parent) by id; return its status and metrics.

    A run cancelled before or while it runs ends here quietly as ``cancelled``. A sweep's
    parent works under its owner lock (``services.sweep_owned``) with its options stored, so
    that if this process dies a worker takes the sweep over (``backtesting.sweep_takeover``); a
    second delivery of a sweep another live process works is skipped.
    """
    options = options or {}
    run = BacktestRun.objects.get(pk=run_id)
    if is_sweep(run):
        skipped = sweep_run_owned(run, options, lambda: execute_run(run, options))
        if skipped is not None:
            return skipped
    else:
        execute_run(run, options)
    run.refresh_from_db()
    return {"run": run.pk, "status": run.status, "metrics": run.metrics}


def execute_run(
    run: BacktestRun, options: dict, *, resume: bool = False, lock: OwnerLock | None = None
) -> None:
    """Execute ``run``; a failure marks it failed, a cancellation ends quietly.

    ``resume``: a sweep taken over from a dead parent (already running: not claimed again),
    ``lock`` its owner lock, which the taker holds.
    """
    try:
        _execute(run, options, resume, lock)
    except (RunNotPending, BacktestCancelled):
        run.refresh_from_db()
        if run.status == RunStatus.CANCELLED:
            return
        raise  # someone else owns the run: its row is theirs to finish
    except BaseException as exc:
        run_fail(run, exc)  # whatever went wrong, the run must not stay pending
        raise


def _execute(
    run: BacktestRun, options: dict, resume: bool = False, lock: OwnerLock | None = None
) -> None:
    if run.optimize in {"grid", "random", "genetic"}:
        sweep_execute(
            parent=run,
            method=run.optimize,
            space=parse_space(run.strategy, options.get("space", [])),
            objective=options.get("objective", "sharpe"),
            n_iter=options.get("trials", 20),
            report=options.get("report"),
            montecarlo=options.get("montecarlo", 0),
            resume=resume,
            lock=lock,
            helps=True,  # this is a worker: its slot runs trials while the parent waits
        )
    elif run.optimize == "walkforward":
        walkforward_execute(
            parent=run,
            space=parse_space(run.strategy, options.get("space", [])),
            train=options["train_bars"],
            test=options["test_bars"],
            anchored=bool(options.get("anchored")),
            objective=options.get("objective", "sharpe"),
            report=options.get("report"),
            resume=resume,
            lock=lock,
            helps=True,
        )
    else:
        backtest_execute(
            run=run, report=options.get("report"), montecarlo=options.get("montecarlo", 0)
        )


backtest_child_task = _child_task  # one parameter set of a sweep (enqueued by TaskEvaluator)
