"""A backtest's process owns its run through a lock that dies with it.

A single backtest killed with SIGKILL is failed ("owner process died"), not left running; a sweep
run by ``backtest --optimize`` in the foreground holds its sweep lock, so the every-minute takeover
never runs a live command-line sweep a second time beside it.
"""

from __future__ import annotations

import pytest

from backtesting.models import BacktestRun
from backtesting.run_owner import OWNER_DIED, backtest_runs_reap, run_lock
from backtesting.sweep_takeover import sweep_lock, sweeps_take_over
from tests.rrr_site.stuck_runs import stuck_in_on_bar

BACKTEST = ("backtest", "--symbols", "BTC-USD", "--timeframe", "1h", "--start", "2024-01-01",
            "--end", "2024-01-03", "--source", "sim", "--no-risk")  # fmt: skip


def test_a_killed_backtest_is_failed_by_the_reaper_and_the_minute_schedule(
    subprocess_env, tmp_path
):
    with stuck_in_on_bar(subprocess_env, tmp_path, *BACKTEST):
        run = BacktestRun.objects.get()
        assert run.status == "running"
        assert backtest_runs_reap() == []  # its owner is alive: left alone
        assert BacktestRun.objects.get().status == "running"
    # Before: "running" for ever on the dashboard and the API. The every-minute schedule reaps.
    sweeps_take_over()
    run.refresh_from_db()
    assert run.status == "failed" and run.error.startswith(OWNER_DIED)
    assert run.finished_at is not None


def test_a_run_whose_lock_is_held_elsewhere_is_not_run_again(transactional_db):
    from backtesting.services import RunNotPending, backtest_execute

    run = BacktestRun.objects.create(
        strategy="sma_cross", symbols=["BTC-USD"], timeframe="1h",
        start="2024-01-01T00:00:00Z", end="2024-01-02T00:00:00Z", data_source="sim",
    )  # fmt: skip
    other = run_lock(run.pk)
    assert other.acquire()
    try:
        with pytest.raises(RunNotPending, match="is being run by"):
            backtest_execute(run=run)
        assert BacktestRun.objects.get(pk=run.pk).status == "pending"
    finally:
        other.release()


def test_a_foreground_sweep_holds_its_lock_while_it_runs(subprocess_env, tmp_path):
    sweep = (*BACKTEST, "--optimize", "grid", "--space", "n=1,2")
    with stuck_in_on_bar(subprocess_env, tmp_path, *sweep):
        parent = BacktestRun.objects.get(parent__isnull=True)
        assert parent.status == "running"
        # Its lock was free: sweeps_take_over (every minute on any qcluster) would have "taken
        # over" the live sweep and run it again beside the command.
        probe = sweep_lock(parent.pk)
        taken = probe.acquire()
        if taken:
            probe.release()
        assert not taken
    probe = sweep_lock(parent.pk)
    assert probe.acquire()  # its process died: the lock went with it (the takeover may proceed)
    probe.release()
