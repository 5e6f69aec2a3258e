"""SIGKILL a real ``runtrader`` at random moments: the stored books must still reconcile.

After every kill: no duplicate client order id, no overfill, positions equal the sum of the
fills, cash equals the initial capital plus the fills' flows minus fees, stored realised P&L and
fees equal a replay of the fills, and no fill stored before a kill ever disappears. Snapshots are
written every 0.3 s so kills land between (and inside) trade writes and snapshot writes. On
PostgreSQL one more run has its database connections cut for seconds before it is killed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from monitoring.models import SystemEvent
from tests.polling import wait_for
from tests.trading.books import assert_books_agree
from trading.models import Account, Fill, PortfolioSnapshot

ROOT = Path(__file__).resolve().parents[2]
# --skip-checks: Django's system checks import every URL's views (the research stack: scipy,
# statsmodels, arch), half of each start here; `manage.py check` runs in CI on its own.
RUN = [sys.executable, "manage.py", "runtrader", "--paper", "--timeframe", "1s",
       "--strategy", "sma_cross", "--param", "fast=2", "--param", "slow=3", "--speed", "40",
       "--snapshot-interval", "0.3", "--heartbeat-interval", "1", "--skip-checks"]
KILLS = 10


@pytest.fixture
def paper_account(subprocess_env):
    """Default symbols and the paper account in the test database."""
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    return Account.objects.get(name="paper")


def sessions() -> int:
    return SystemEvent.objects.filter(component="runtrader", kind="session_start").count()


def stored_fills() -> set:
    return set(Fill.objects.values_list("order_id", "venue_trade_id"))


def start_engine(env: dict) -> subprocess.Popen:
    started = sessions()
    proc = subprocess.Popen(RUN, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: sessions() > started or proc.poll() is not None, 120, "engine start")
    assert proc.poll() is None, proc.stderr.read()[-3000:]
    return proc


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def cut_connections_for(seconds: float, spare: int) -> None:
    """Terminate every other backend of this database in a loop (on a thread of its own)."""
    import psycopg

    settings = connection.settings_dict
    with psycopg.connect(host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432,
                         user=settings["USER"] or "postgres", dbname=settings["NAME"],
                         autocommit=True) as conn:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                "current_database() AND pid <> pg_backend_pid() AND pid <> %s", [spare])
            time.sleep(0.05)


def test_random_sigkills_never_lose_or_invent_money(subprocess_env, paper_account):
    rng = random.Random(20261206)
    before: set = set()
    for _ in range(KILLS):
        proc = start_engine(subprocess_env)
        try:
            time.sleep(rng.uniform(0.3, 3.0))  # the random moment of the crash is the point
        finally:
            kill(proc)
        assert_books_agree(paper_account)
        after = stored_fills()
        assert before <= after, "a fill stored before a crash disappeared"
        before = after
    assert len(before) > KILLS, "the runs made too few fills to test anything"
    assert PortfolioSnapshot.objects.filter(account=paper_account).exists()

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            spare = cursor.fetchone()[0]
        proc = start_engine(subprocess_env)
        try:
            cutter = threading.Thread(target=cut_connections_for, args=(3.0, spare))
            cutter.start()
            time.sleep(rng.uniform(1.0, 2.5))
        finally:
            kill(proc)
            cutter.join()
        assert_books_agree(paper_account)
        assert before <= stored_fills()

    result = subprocess.run([*RUN, "--duration", "4"], cwd=ROOT, env=subprocess_env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_books_agree(paper_account)
    assert before <= stored_fills()
