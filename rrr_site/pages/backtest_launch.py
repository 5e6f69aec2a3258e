"""Queue a backtest or an optimisation from the dashboard's form.

The form's fields become the ``backtest`` command's own flags, parsed by its parser and checked
by ``backtesting.request.validated_request`` — the same checks as the command line — before the
run row is written; the run is then queued as ``backtesting.tasks.backtest_task`` exactly as
``backtest --async`` queues it. A refusal writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from backtesting.models import BacktestRun
from backtesting.services import BacktestInputError, backtest_run_create

SWEEPS = {"grid", "random", "genetic"}


class LaunchRefused(ValueError):
    """The form's input was refused (the message says which field and why)."""


def _argv(form: Mapping[str, str]) -> list[str]:
    argv = [
        "--strategy", form.get("strategy", ""),
        "--symbols", form.get("symbols", ""),
        "--timeframe", form.get("timeframe", "1h"),
        "--start", form.get("start", ""),
        "--end", form.get("end", ""),
        "--fees-bps", form.get("fees_bps") or "10",
        "--slippage-bps", form.get("slippage_bps") or "2",
        "--no-risk",
    ]  # fmt: skip
    for item in (form.get("params") or "").split():
        argv += ["--param", item]
    optimize = form.get("optimize") or ""
    if optimize:
        argv += ["--optimize", optimize, "--objective", form.get("objective") or "sharpe"]
        for item in (form.get("space") or "").split():
            argv += ["--space", item]
    return argv


def backtest_launch(form: Mapping[str, str]) -> BacktestRun:
    """Validate ``form`` as the command would, record the pending run and queue it."""
    from django.core.management.base import CommandError
    from django_q.tasks import async_task

    from backtesting.management.commands.backtest import Command, parse_day
    from backtesting.request import validated_request

    parser = Command().create_parser("manage.py", "backtest")
    try:
        options = vars(parser.parse_args(_argv(form)))
        start = parse_day(options["start"], "--start")
        end = parse_day(options["end"], "--end")
        if end <= start:
            raise BacktestInputError("end must be after start")
        if options["optimize"] and options["optimize"] not in SWEEPS:
            raise BacktestInputError(f"optimisation must be one of {', '.join(sorted(SWEEPS))}")
        run = backtest_run_create(**validated_request(options, start, end))
    except (BacktestInputError, CommandError) as exc:
        raise LaunchRefused(" ".join(str(exc).split())) from exc
    async_task(
        "backtesting.tasks.backtest_task",
        run.pk,
        {
            "space": options["space"],
            "objective": options["objective"],
            "trials": options["trials"],
            "report": None,
            "montecarlo": 0,
        },
        group=run.task_group or None,
        task_name=f"backtest-{run.pk}",
    )
    return run
