"""A backfill owns its job by a lock that dies with it: kill -9, rerun at once, no gap, no dup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from marketdata.engine.simulator import SimulatedMarket
from marketdata.models import BackfillJob, Bar
from tests.polling import wait_for

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
JAN1 = datetime(2024, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
COMMAND = [sys.executable, "manage.py", "backfill", "--source", "sim", "--symbols", "BTC-USD"]
COMMAND += ["--start", "2024-01-01", "--end", "2024-01-02", "--page-size", "60", "--no-progress"]
PIPES = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "cwd": ROOT}


def job() -> BackfillJob | None:
    return BackfillJob.objects.first()


def pages_at_least(count: int) -> bool:
    current = job()
    return current is not None and current.pages >= count


def is_zombie(pid: int) -> bool:
    """Return True when ``pid`` has exited but its parent has not reaped it yet."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] == "Z"


def test_a_sigkilled_backfill_is_rerun_at_once_and_resumes_without_gap_or_duplicate(
    subprocess_env,
):
    # 10 pages a second: the 24 pages take ~2.4 s, so the kill lands mid-way.
    first = subprocess.Popen([*COMMAND, "--rate", "600"], env=subprocess_env, **PIPES)
    try:
        wait_for(lambda: pages_at_least(3))
        os.kill(first.pid, signal.SIGKILL)
        # Not reaped: the dead runner's PID still exists, as a zombie. Only a lock can tell.
        wait_for(lambda: is_zombie(first.pid), timeout=10)
        killed = job()
        assert killed.status == "running" and 3 <= killed.pages < 24
        second = subprocess.run([*COMMAND, "--rate", "0"], env=subprocess_env, **PIPES, timeout=100)
    finally:
        first.kill()
        first.communicate(timeout=10)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"job {killed.pk}: resuming" in second.stdout
    assert f"{1440 - killed.rows_written} bars written in {24 - killed.pages} pages" in (
        second.stdout
    )
    assert "gap report: no missing 1m bars" in second.stdout
    done = job()
    assert (done.status, done.rows_written, done.pages) == ("completed", 1440, 24)
    stamps = list(Bar.objects.order_by("ts").values_list("ts", flat=True))
    assert stamps == [JAN1 + n * MINUTE for n in range(1440)], "no gap and no duplicate"
    closes = list(Bar.objects.order_by("ts").values_list("close", flat=True))
    expected = SimulatedMarket(seed=42).history_bars("BTC-USD", "1m", JAN1, JAN1 + 1440 * MINUTE)
    assert [float(c) for c in closes] == pytest.approx(expected["close"].tolist())


def test_a_second_backfill_of_a_running_job_refuses_with_one_clear_line(subprocess_env):
    # One page a second: the first runner is still at work when the second starts.
    first = subprocess.Popen([*COMMAND, "--rate", "60"], env=subprocess_env, **PIPES)
    try:
        wait_for(lambda: pages_at_least(1))
        second = subprocess.run([*COMMAND, "--rate", "0"], env=subprocess_env, **PIPES, timeout=100)
        running = job()
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert second.returncode != 0
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert (
        f"backfill job {running.pk} is being run by another process (pid {first.pid} " in (lines[0])
    )
    assert running.status == "running" and f":{first.pid}:" in running.claimed_by
    assert BackfillJob.objects.count() == 1
    # The first runner stopped cleanly and handed the job back; nothing was written twice.
    stopped = job()
    assert stopped.status == "pending"
    assert Bar.objects.count() == stopped.rows_written == 60 * stopped.pages
