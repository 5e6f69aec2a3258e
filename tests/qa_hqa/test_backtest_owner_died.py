"""A single backtest whose process was killed is failed ("owner process died"), not left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backtesting.models import BacktestRun
from backtesting.run_owner import OWNER_DIED, backtest_runs_reap, run_lock
from backtesting.sweep_takeover import sweeps_take_over
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]

STUCK = """
import time
from pathlib import Path

from trading.engine.strategy import Strategy


class Stuck(Strategy):
    def on_bar(self, bar, ctx):
        Path({marker!r}).write_text("in on_bar")
        while True:  # until SIGKILL
            time.sleep(1)
"""


def test_a_killed_backtest_is_failed_by_the_reaper_and_the_minute_schedule(
    subprocess_env, tmp_path
):
    marker = tmp_path / "running"
    strategy = tmp_path / "stuck.py"
    strategy.write_text(STUCK.format(marker=str(marker)))
    process = subprocess.Popen(
        [sys.executable, "manage.py", "backtest", "--strategy", f"{strategy}:Stuck",
         "--symbols", "BTC-USD", "--timeframe", "1h", "--start", "2024-01-01",
         "--end", "2024-01-03", "--source", "sim", "--no-risk"],
        cwd=ROOT, env=subprocess_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: marker.exists() or process.poll() is not None, what="the run's first bar")
        assert process.poll() is None
        run = BacktestRun.objects.get()
        assert run.status == "running"
        assert backtest_runs_reap() == []  # its owner is alive: left alone
        assert BacktestRun.objects.get().status == "running"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
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
