"""A runtrader whose database sessions were cut during the run (a failover, an operator's
``pg_terminate_backend``) still stops cleanly on SIGINT: its last notice reads the account on
a fresh connection, not on the main thread's dead one (it ended with an OperationalError
traceback and exit code 1)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.polling import wait_for
from trading.models import PortfolioSnapshot

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]


def _cut_sessions_but_the_lock() -> int:
    """Terminate every session of the test database but ours and the engine's lock's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name NOT LIKE 'rrr lock pid %%'"
        )
        return cursor.fetchone()[0]


def test_a_clean_stop_after_the_sessions_were_cut(subprocess_env, paper):
    if connection.vendor != "postgresql":
        pytest.skip("only a database session can be cut from outside")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runtrader", "--paper", "--timeframe", "1s",
         "--speed", "10", "--snapshot-interval", "0.3"],
        cwd=ROOT, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(
            lambda: (
                PortfolioSnapshot.objects.filter(account=paper).exists() or proc.poll() is not None
            ),
            90,
            "the engine trading",
        )
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert _cut_sessions_but_the_lock() >= 1
        # Trading again: the engine's threads opened new sessions and stored a snapshot.
        seen = PortfolioSnapshot.objects.count()
        wait_for(
            lambda: PortfolioSnapshot.objects.count() > seen or proc.poll() is not None,
            60,
            "a snapshot after the cut",
        )
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert "Traceback" not in err and "OperationalError" not in err, err[-3000:]
    assert proc.returncode == 0, err[-3000:]
    assert "events=" in out
