"""A sweep run by ``backtest --optimize`` in the foreground holds its sweep lock, so the
every-minute takeover never runs a live command-line sweep a second time beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from backtesting.models import BacktestRun
from backtesting.sweep_takeover import sweep_lock
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]

STUCK = """
import time
from pathlib import Path

from trading.engine.params import IntParam
from trading.engine.strategy import Strategy


class Stuck(Strategy):
    parameters = {{"n": IntParam(1, 1, 5)}}

    def on_bar(self, bar, ctx):
        Path({marker!r}).write_text("in a trial")
        while True:  # until SIGKILL
            time.sleep(1)
"""


def test_a_foreground_sweep_holds_its_lock_while_it_runs(subprocess_env, tmp_path):
    marker = tmp_path / "running"
    strategy = tmp_path / "stuck.py"
    strategy.write_text(STUCK.format(marker=str(marker)))
    process = subprocess.Popen(
        [sys.executable, "manage.py", "backtest", "--strategy", f"{strategy}:Stuck",
         "--symbols", "BTC-USD", "--timeframe", "1h", "--start", "2024-01-01",
         "--end", "2024-01-03", "--source", "sim", "--no-risk", "--optimize", "grid",
         "--space", "n=1,2"],
        cwd=ROOT, env=subprocess_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: marker.exists() or process.poll() is not None, what="the first trial")
        assert process.poll() is None
        parent = BacktestRun.objects.get(parent__isnull=True)
        assert parent.status == "running"
        # Its lock was free: sweeps_take_over (every minute on any qcluster) would have "taken
        # over" the live sweep and run it again beside the command.
        probe = sweep_lock(parent.pk)
        taken = probe.acquire()
        if taken:
            probe.release()
        assert not taken
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
    probe = sweep_lock(parent.pk)
    assert probe.acquire()  # its process died: the lock went with it (the takeover may proceed)
    probe.release()
