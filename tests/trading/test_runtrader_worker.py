"""`make run` executes queued tasks: ``runtrader --serve`` hosts a django-q2 worker."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django_q.models import Task
from django_q.tasks import async_task

from monitoring.models import SystemEvent
from tests.polling import wait_for
from tests.trading.test_runtrader_serve import free_port

ROOT = Path(__file__).resolve().parents[2]


def worker_env(env: dict) -> dict:
    """A real broker, as outside the tests, and this process's key to sign the tasks it queues."""
    return {**env, "Q_SYNC": "false", "SECRET_KEY": settings.SECRET_KEY}


def make_run(port: int, *extra: str) -> list[str]:
    """Return the README's run command (what `make run` starts) on ``port``."""
    return [sys.executable, "manage.py", "runtrader", "--paper", "--serve", f"127.0.0.1:{port}",
            "--strategy", "sma_cross", "--symbols", "BTC-USD,ETH-USD", *extra]


def run_and_queue(env: dict, *extra: str) -> tuple[subprocess.Popen, str]:
    """Start the run command, queue a task once it trades; return the process and task id."""
    proc = subprocess.Popen(make_run(free_port(), *extra), cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: proc.poll() is not None
             or SystemEvent.objects.filter(kind="session_start").exists(), 90, "engine start")
    assert proc.poll() is None, proc.stderr.read()[-3000:]
    # Queued as the CLI, admin and API do: to the broker, for whichever worker is running.
    return proc, async_task("math.hypot", 3, 4, sync=False)


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-3000:]
    return out


def test_a_task_queued_while_the_run_command_serves_is_executed(subprocess_env, paper):
    env = worker_env(subprocess_env)
    proc, task_id = run_and_queue(env)
    try:
        wait_for(lambda: Task.objects.filter(id=task_id).exists(), 60, "the task to run")
    finally:
        out = stop(proc)
    task = Task.objects.get(id=task_id)
    assert task.success and task.result == 5.0
    assert "task worker" in out


def test_no_worker_leaves_queued_tasks_for_a_separate_qcluster(subprocess_env, paper):
    env = worker_env(subprocess_env)
    proc, task_id = run_and_queue(env, "--no-worker")
    try:
        wait_for(lambda: proc.poll() is not None or SystemEvent.objects.filter(
            kind="heartbeat").count() >= 2, 60, "the engine to run a while")
    finally:
        stop(proc)
    assert not Task.objects.filter(id=task_id).exists()
