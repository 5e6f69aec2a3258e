"""runtrader's qcluster child ends with everything it started: its sentinel, workers and what
a task spawned. A task past the stop timeout, and runtrader killed by SIGKILL, left them as
orphans (one still ran a task 20 minutes later). Real processes: a cluster, a task running
``sleep`` in a shell."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django_q.tasks import async_task

from tests.polling import wait_for

pytestmark = pytest.mark.timeout(240)
ROOT = Path(__file__).resolve().parents[2]


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """Say whether ``pid`` runs (a zombie has ended)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def descendants(root: int) -> list[int]:
    """Return the living processes below ``root`` (children, grandchildren...)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        found += children
        frontier += children
    return sorted(found)


def end_all(pids: list[int]) -> None:
    """Kill what is left of ``pids``: a failed test leaves no ten-minute sleeper behind."""
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def queue_a_long_task(tmp_path: Path) -> Path:
    """Queue a task that touches a file, then runs ``sleep`` for ten minutes; return the file."""
    flag = tmp_path / "task-started"
    async_task("subprocess.run", ["sh", "-c", f"touch {flag} && sleep 600"], sync=False)
    return flag


def cluster_env(env: dict, monkeypatch) -> None:
    """The child's environment (read from ours): this test's database, a real broker."""
    for key in ("DATABASE_URL", "SQLITE_PATH"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {**env, "Q_SYNC": "false", "SECRET_KEY": settings.SECRET_KEY}.items():
        monkeypatch.setenv(key, value)


def test_a_task_past_the_stop_timeout_is_killed_with_its_whole_cluster(
    subprocess_env, paper, tmp_path, monkeypatch
):
    from trading.management.commands import runtrader

    cluster_env(subprocess_env, monkeypatch)
    monkeypatch.setattr(runtrader, "WORKER_STOP_TIMEOUT", 3.0)
    flag = queue_a_long_task(tmp_path)
    worker = runtrader.TaskWorker(restarts=0)

    async def scenario() -> list[int]:
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            async with asyncio.timeout(150):
                while not flag.exists():  # the task runs in a worker of the cluster
                    assert not running.done(), "the task worker exited"
                    await asyncio.sleep(0.1)
        except BaseException:
            end_all([worker.proc.pid, *descendants(worker.proc.pid)] if worker.proc else [])
            raise
        below = descendants(worker.proc.pid)
        stop.set()
        await worker.stop()  # SIGTERM to the main process; past the timeout, SIGKILL to all
        await running
        return below

    below = asyncio.run(scenario())
    try:
        assert len(below) >= 3, below  # the sentinel, its workers, the task's shell and sleep
        assert worker.proc.returncode is not None
        wait_for(lambda: not any(alive(pid) for pid in below), 20, "the cluster's processes end")
    finally:
        end_all(below)


def test_a_killed_runtrader_takes_its_cluster_and_its_tasks_with_it(
    subprocess_env, paper, tmp_path
):
    from tests.trading.test_runtrader_serve import free_port

    env = {**subprocess_env, "Q_SYNC": "false", "SECRET_KEY": settings.SECRET_KEY}
    flag = queue_a_long_task(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runtrader", "--paper", "--serve",
         f"127.0.0.1:{free_port()}", "--symbols", "BTC-USD"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    below: list[int] = []
    try:
        wait_for(lambda: flag.exists() or proc.poll() is not None, 150, "the task running")
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        below = descendants(proc.pid)
        assert len(below) >= 4, below  # the cluster's main, sentinel, workers, the task's shell
        os.kill(proc.pid, signal.SIGKILL)  # no cleanup at all
        proc.wait(timeout=30)
        wait_for(lambda: not any(alive(pid) for pid in below), 20, "the orphans ended")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        end_all(below)
