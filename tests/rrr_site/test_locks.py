"""Ownership locks: exclusive while held, free the moment the owner dies (SIGKILL, zombie)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from rrr_site.locks import FileLock, LockHeld, lock_held, owner_lock

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time, django
django.setup()
from rrr_site.locks import owner_lock
lock = owner_lock(sys.argv[1])
print("locked" if lock.acquire() else "busy", flush=True)
time.sleep(120)
"""


def poll(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Return True as soon as ``predicate()`` is true, False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def is_zombie(pid: int) -> bool:
    """Return True when ``pid`` has exited but was not reaped yet."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] == "Z"


def start_holder(env: dict[str, str], name: str) -> subprocess.Popen:
    """Start a process that takes lock ``name`` and keeps it; return once it holds it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, name],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "rrr_site.settings"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    if line != "locked":
        proc.kill()
        raise AssertionError(f"holder got {line!r}: {proc.stderr.read()[-2000:]}")
    return proc


@pytest.mark.django_db(transaction=True)
def test_a_held_lock_excludes_others_until_released():
    first, second = owner_lock("job:1"), owner_lock("job:1")
    assert first.acquire() and first.held
    assert not second.acquire() and not second.held
    assert f"pid {os.getpid()}" in (second.holder() or "")
    assert owner_lock("job:2").acquire(), "another name is another lock"
    first.release()
    assert second.acquire()
    second.release()


@pytest.mark.django_db(transaction=True)
def test_lock_held_names_the_holder_when_busy():
    with lock_held("account:7", busy="account 7 is in use"):
        with pytest.raises(LockHeld, match=rf"account 7 is in use \(pid {os.getpid()} on "):
            with lock_held("account:7", busy="account 7 is in use"):
                pass
    with lock_held("account:7"):  # released on leaving the block
        pass


@pytest.mark.django_db(transaction=True)
def test_lock_file_names_stay_inside_the_lock_folder():
    if connection.vendor != "sqlite":
        pytest.skip("file locks are the SQLite flavour")
    lock = owner_lock("../../etc/passwd\x00")
    assert isinstance(lock, FileLock)
    db = Path(connection.settings_dict["NAME"]).resolve()
    assert lock.path.parent == db.with_name(f"{db.name}.locks")
    assert "/" not in lock.path.name and "\x00" not in lock.path.name
    assert owner_lock("a/b").path != owner_lock("a_b").path, "names never collide"


def test_a_sigkilled_holder_frees_the_lock_at_once_even_as_an_unreaped_zombie(subprocess_env):
    proc = start_holder(subprocess_env, "backfill-job:42")
    try:
        mine = owner_lock("backfill-job:42")
        assert not mine.acquire()
        assert f"pid {proc.pid}" in (mine.holder() or "")
        os.kill(proc.pid, signal.SIGKILL)
        assert poll(lambda: is_zombie(proc.pid)), "the holder should be a zombie now"
        # No reaping: a PID check would still see the process; the lock knows it is gone.
        assert poll(mine.acquire), "the lock of a killed process must be free"
        mine.release()
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_a_lost_postgres_connection_reports_the_lock_gone(subprocess_env):
    if connection.vendor != "postgresql":
        pytest.skip("only a database connection can be cut from outside")
    lock = owner_lock("runtrader-account:1")
    assert lock.acquire() and lock.alive()
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [f"rrr lock pid {os.getpid()} on {os.uname().nodename}"[:63]],
        )
    assert poll(lambda: not lock.alive())
    other = owner_lock("runtrader-account:1")
    assert other.acquire(), "the database freed the lock with its session"
    other.release()
    lock.release()
