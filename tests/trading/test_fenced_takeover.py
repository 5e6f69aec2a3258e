"""Two engines never trade one account, even in the window after a lock connection is cut.

Real ``runtrader`` processes on PostgreSQL. The first engine's lock session is terminated
(``pg_terminate_backend``, the database otherwise reachable); another owner takes the account
in that window. A trigger logs every write of orders, fills, positions and cash with the
writing session's application name (each engine's database URL names it), so the test can tell
whose write came after the takeover: none of the first engine's. It stops with a clear message,
the second trades, and the books reconcile.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection

from rrr_site.locks import owner_lock
from tests.polling import wait_for
from tests.trading.books import assert_books_agree
from trading.models import AccountOwner, PortfolioSnapshot
from trading.persistence import AccountFence

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]
RUN = [sys.executable, "manage.py", "runtrader", "--paper", "--timeframe", "1s",
       "--strategy", "sma_cross", "--param", "fast=2", "--param", "slow=3", "--speed", "40",
       "--snapshot-interval", "0.3", "--heartbeat-interval", "1", "--skip-checks"]
LOGGED = {  # table -> the trigger's condition: trading state only (not heartbeats or modes)
    "trading_order": "",
    "trading_fill": "",
    "trading_position": "",
    "trading_account": "WHEN (OLD.cash IS DISTINCT FROM NEW.cash)",
    "trading_accountowner": "WHEN (OLD.epoch IS DISTINCT FROM NEW.epoch)",
}


@pytest.fixture
def write_log(paper):
    """Log (order of execution, application name, table) of every trading-state write."""
    if connection.vendor != "postgresql":
        pytest.skip("only a database session can be cut from outside; a flock cannot be lost")
    with connection.cursor() as cur:
        cur.execute(
            "CREATE TABLE h21_writes (id bigserial PRIMARY KEY, app text, tbl text);"
            "CREATE FUNCTION h21_log() RETURNS trigger AS $$ BEGIN "
            "INSERT INTO h21_writes (app, tbl) "
            "VALUES (current_setting('application_name'), TG_TABLE_NAME); RETURN NULL; END "
            "$$ LANGUAGE plpgsql;"
        )
        for table, when in LOGGED.items():
            events = "UPDATE" if when else "INSERT OR UPDATE"
            cur.execute(
                f"CREATE TRIGGER h21_log AFTER {events} ON {table} FOR EACH ROW {when} "
                "EXECUTE FUNCTION h21_log()"
            )
    yield
    with connection.cursor() as cur:
        for table in LOGGED:
            cur.execute(f"DROP TRIGGER IF EXISTS h21_log ON {table}")
        cur.execute("DROP FUNCTION IF EXISTS h21_log() CASCADE; DROP TABLE IF EXISTS h21_writes")


def writes(app: str, table: str | None = None, after: int = 0) -> list[int]:
    sql = "SELECT id FROM h21_writes WHERE app = %s AND id > %s"
    args: list = [app, after]
    if table:
        sql += " AND tbl = %s"
        args.append(table)
    with connection.cursor() as cur:
        cur.execute(sql + " ORDER BY id", args)
        return [row[0] for row in cur.fetchall()]


def last_bump() -> int:
    """Return the log id of the latest raise of an epoch (a takeover)."""
    with connection.cursor() as cur:
        cur.execute("SELECT max(id) FROM h21_writes WHERE tbl = 'trading_accountowner'")
        return cur.fetchone()[0]


def named(env: dict[str, str], app: str) -> dict[str, str]:
    return {**env, "DATABASE_URL": f"{env['DATABASE_URL']}?application_name={app}"}


def start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([*RUN, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def lock_sessions(pid: int) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
                    [f"rrr lock pid {pid} %"])
        return cur.fetchone()[0]


class LockCutter(threading.Thread):
    """Terminate one process's lock sessions every 20 ms, so it cannot take the lock back."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.done = pid, threading.Event()

    def run(self) -> None:
        import psycopg

        s = connection.settings_dict
        with psycopg.connect(host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432,
                             user=s["USER"] or "postgres", dbname=s["NAME"],
                             autocommit=True) as conn:
            while not self.done.is_set():
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE application_name LIKE %s", [f"rrr lock pid {self.pid} %"])
                self.done.wait(0.02)

    def stop(self) -> None:
        self.done.set()
        self.join(10)


def trading(proc: subprocess.Popen, paper, app: str) -> None:
    """Wait until the engine has stored a snapshot of the account and some fills."""
    wait_for(lambda: proc.poll() is not None or (
        PortfolioSnapshot.objects.filter(account=paper).exists()
        and writes(app, "trading_fill")), 90, f"{app} trading")
    assert proc.poll() is None, proc.stderr.read()[-3000:]


def first_stops_fenced_out(first: subprocess.Popen, takeover: int) -> str:
    """The first engine stopped loudly and wrote no trading state after ``takeover``."""
    _, err = first.communicate(timeout=120)
    assert first.returncode != 0, err[-3000:]
    assert "lost the lock of account 'paper'" in err.strip().splitlines()[-1], err[-3000:]
    # At once: the refusal is final, so it does not retry its last write (for 30 s, before).
    assert "engine stopping at once with unsaved trading state" in err, err[-3000:]
    assert writes("engine-a", after=takeover) == [], "the first engine wrote after the takeover"
    return err


def test_a_write_after_another_took_the_account_is_refused_and_the_engine_stops(
    subprocess_env, paper, write_log
):
    first = start(named(subprocess_env, "engine-a"))
    cutter = LockCutter(first.pid)
    rival = owner_lock(f"runtrader-account:{paper.pk}")
    fence = None
    try:
        trading(first, paper, "engine-a")
        cutter.start()
        wait_for(lambda: rival.acquire(), 30, "the rival's lock")
        # Another owner takes the account at once: well before the engine's next lock check
        # (5 s), so only the fence stands between its next write (0.3 s) and the books.
        fence = AccountFence.take(paper, "the rival")
        takeover = last_bump()
        err = first_stops_fenced_out(first, takeover)
        assert f"another engine owns it now (epoch {fence.epoch}, taken by the rival" in err
    finally:
        cutter.stop()
        if fence is not None:
            fence.release()
        rival.release()
        if first.poll() is None:
            first.kill()
            first.communicate(timeout=30)
    assert_books_agree(paper)
    second = subprocess.run([*RUN, "--duration", "6"], cwd=ROOT, env=subprocess_env,
                            capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr[-3000:]
    assert_books_agree(paper)


def test_a_second_engine_started_in_the_window_trades_and_the_first_never_writes_again(
    subprocess_env, paper, write_log
):
    first = start(named(subprocess_env, "engine-a"))
    cutter = LockCutter(first.pid)
    second = None
    try:
        trading(first, paper, "engine-a")
        cutter.start()
        wait_for(lambda: lock_sessions(first.pid) == 0, 10, "the cut")
        for _ in range(5):  # the first may hold a retaken lock for an instant: start again
            second = start(named(subprocess_env, "engine-b"), "--duration", "15")
            wait_for(lambda s=second: s.poll() is not None or AccountOwner.objects.filter(
                account=paper, owner__startswith=f"pid {s.pid} ").exists(), 90, "the second")
            if second.poll() is None:
                break
            assert "already being traded" in second.stderr.read(), "the second failed"
        assert second.poll() is None, "the second engine never took the account"
        takeover = writes("engine-b", "trading_accountowner")[0]
        first_stops_fenced_out(first, takeover)
        cutter.stop()
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err[-3000:]
        assert "events=" in out
    finally:
        cutter.stop()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)
    assert writes("engine-b", "trading_fill", after=takeover), "the second engine never traded"
    assert_books_agree(paper)
