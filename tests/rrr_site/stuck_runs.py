"""A ``manage.py`` run whose strategy stops in ``on_bar`` until SIGKILL: the owner-lock tests'
one set-up (backtests, sweeps, research studies; rrr_site.run_owner reaps what they leave)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
        Path({marker!r}).write_text("in on_bar")
        while True:  # until SIGKILL
            time.sleep(1)
"""


@contextmanager
def stuck_in_on_bar(env: dict[str, str], tmp_path: Path, *args: str) -> Iterator[subprocess.Popen]:
    """Run ``manage.py *args --strategy <Stuck>``; yield it once in on_bar; SIGKILL it on exit."""
    marker = tmp_path / "running"
    strategy = tmp_path / "stuck.py"
    strategy.write_text(STUCK.format(marker=str(marker)))
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args, "--strategy", f"{strategy}:Stuck"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(lambda: marker.exists() or process.poll() is not None, what="the first on_bar")
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()
