"""``runtrader`` on an SQLite database another process keeps write-locked: a clear message and a
non-zero exit, not a traceback from taking the account's ownership (``AccountFence.take``)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from trading.models import Account, AccountOwner

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    "sqlite" not in settings.DATABASES["default"]["ENGINE"],
    reason="SQLite's single writer lock (PostgreSQL writers wait on rows instead)",
)


def test_a_locked_database_stops_runtrader_with_a_message_and_exit_1(subprocess_env):
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    epoch_table = AccountOwner._meta.db_table
    holder = sqlite3.connect(subprocess_env["SQLITE_PATH"], isolation_level=None, timeout=30)
    try:
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held past runtrader's busy timeout
        result = subprocess.run(
            [sys.executable, "manage.py", "runtrader", "--paper", "--duration", "5",
             "--skip-checks"],
            cwd=ROOT, env=subprocess_env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        taken = holder.execute(f"SELECT count(*) FROM {epoch_table}").fetchone()[0]  # noqa: S608
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "account 'paper': could not record this engine as its owner" in result.stderr
    assert "database is locked" in result.stderr
    assert "nothing was started" in result.stderr
    assert taken == 0  # it wrote nothing
    # With the lock gone the same command runs (the message was about the lock, nothing else).
    again = subprocess.run(
        [sys.executable, "manage.py", "runtrader", "--paper", "--duration", "2", "--skip-checks"],
        cwd=ROOT, env=subprocess_env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert Account.objects.get(name="paper").owner.epoch == 1
