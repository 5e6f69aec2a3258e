"""Queue, cancel and authorise backtest runs for the API (and any caller with a user).

A request is checked exactly as ``manage.py backtest`` checks its flags: the command's own parser
gives every default and ``backtesting.request.validated_request`` every rule, before the run row
is written. The run is then queued as ``backtesting.tasks.backtest_task``, as ``backtest --async``
queues it. A refused request writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from backtesting.choices import RunStatus
from backtesting.models import BacktestRun
from backtesting.services import (
    BacktestInputError,
    backtest_run_create,
    model_signal_in_sample,
    progress_publish_stored,
)
from monitoring.services import audit_record

UNFINISHED = (RunStatus.PENDING, RunStatus.RUNNING)
TASK = "backtesting.tasks.backtest_task"


class RunFinished(BacktestInputError):
    """The run has already finished: there is nothing to cancel."""


def command_defaults() -> dict[str, Any]:
    """Return every ``backtest`` option at its command-line default."""
    from backtesting.management.commands.backtest import Command

    return vars(Command().create_parser("manage.py", "backtest").parse_args([]))


def backtest_request(
    changes: Mapping[str, Any], start: datetime, end: datetime, *, allow_in_sample: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (``backtest_run_create`` kwargs, the options) for flags ``changes`` (by dest name).

    Raises ``BacktestInputError`` with the command's message for anything it would refuse,
    including a ``model_signal`` run over its model's training range (unless allowed).
    """
    from backtesting.request import validated_request

    options = {**command_defaults(), **changes}
    if end <= start:
        raise BacktestInputError("end must be after start")
    request = validated_request(options, start, end)
    if request["strategy"] == "model_signal" and not allow_in_sample:
        problems = model_signal_in_sample(
            symbols=request["symbols"], timeframe=request["timeframe"], start=start, end=end
        )
        if problems:
            raise BacktestInputError(
                f"model_signal over its model's own training range is in-sample "
                f"({'; '.join(problems)}): start after the training end, or allow_in_sample"
            )
    return request, options


def task_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Return what ``backtest_task`` needs beyond the run row (search space, Monte Carlo...)."""
    return {
        "space": list(options.get("space") or []),
        "objective": options.get("objective") or "sharpe",
        "trials": options.get("trials") or 20,
        "report": options.get("report"),
        "montecarlo": options.get("montecarlo") or 0,
        "train_bars": options.get("train_bars"),
        "test_bars": options.get("test_bars"),
        "anchored": bool(options.get("anchored")),
    }


def backtest_submit(
    *, changes: Mapping[str, Any], start: datetime, end: datetime, owner: Any,
    allow_in_sample: bool = False, name: str = "",
) -> tuple[BacktestRun, str]:  # fmt: skip
    """Validate, record the pending run owned by ``owner`` and queue it; return (run, task id)."""
    from django_q.tasks import async_task

    request, options = backtest_request(changes, start, end, allow_in_sample=allow_in_sample)
    run = backtest_run_create(**request, owner=owner, name=name)
    task = async_task(
        TASK, run.pk, task_options(options), group=run.task_group or None,
        task_name=f"backtest-{run.pk}",
    )  # fmt: skip
    run.refresh_from_db()  # a synchronous queue (tests, no cluster) has already run it
    return run, task


def may_control(user: Any, run: BacktestRun) -> bool:
    """Return whether ``user`` may read the run's report or cancel it: its owner, staff, admins."""
    from rrr_site.api.roles import Role, role_of

    if user is None or not user.is_authenticated:
        return False
    if run.owner_id is not None and run.owner_id == user.pk:
        return True
    return user.is_staff or role_of(user) >= Role.ADMIN


@transaction.atomic
def backtest_cancel(*, run: BacktestRun, actor: Any) -> BacktestRun:
    """Stop a pending or running run (and a sweep's unfinished trials); audited.

    A pending run is never started (the worker finds it no longer pending); a running one stops
    at its next progress mark (every 1 % of its bars) or, for a sweep, at its next poll of the
    trials. ``RunFinished`` when it had already finished.
    """
    locked = BacktestRun.objects.select_for_update().get(pk=run.pk)
    if locked.status not in UNFINISHED:
        raise RunFinished(f"backtest #{run.pk} is already {locked.status}")
    now = timezone.now()
    reason = f"cancelled by {getattr(actor, 'username', actor)}"
    BacktestRun.objects.filter(pk=run.pk).update(
        status=RunStatus.CANCELLED, error=reason, finished_at=now
    )
    trials = BacktestRun.objects.filter(parent_id=run.pk, status__in=UNFINISHED).update(
        status=RunStatus.CANCELLED, error=reason, finished_at=now
    )
    audit_record(
        actor=actor,
        action="backtest.cancel",
        obj=locked,
        before={"status": locked.status},
        after={"status": RunStatus.CANCELLED, "trials_cancelled": trials},
    )
    locked.refresh_from_db()
    progress_publish_stored(locked.pk)
    return locked
