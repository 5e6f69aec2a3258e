"""``runtrader`` refuses bad input before writing, keeps live accounts live, one engine each."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command

from tests.polling import wait_for
from trading.models import Account, Fill, PortfolioSnapshot

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]
# --skip-checks: the system checks' URL imports cost each engine process ~1.5 CPU-s and are not
# what these tests prove; CI runs `manage.py check` on its own.
RUN = [sys.executable, "manage.py", "runtrader", "--skip-checks"]


def row_counts() -> dict[str, int]:
    """Return the number of rows of every model (to prove a refusal wrote nothing)."""
    return {m._meta.label: m.objects.count() for m in apps.get_models()}


def runtrader(*args: str) -> str:
    """Run the command in-process; return its stdout."""
    out = io.StringIO()
    call_command("runtrader", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def listening_port() -> tuple[socket.socket, int]:
    """Return a socket listening on a free 127.0.0.1 port, and the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeframe", "7x"], "--timeframe '7x' is not supported; use one of 1s, 1m, 5m"),
        (["--timeframe", "1w"], "--timeframe '1w' is not supported; use one of 1s, 1m, 5m"),
        (["--duration", "-5"], "--duration must be a finite number of seconds above 0"),
        (["--duration", "0"], "--duration must be a finite number of seconds above 0"),
        (["--duration", "nan"], "--duration must be a finite number of seconds above 0"),
        (["--snapshot-interval", "0"], "--snapshot-interval must be a finite number"),
        (["--snapshot-interval", "-1"], "--snapshot-interval must be a finite number"),
        (["--snapshot-interval", "nan"], "--snapshot-interval must be a finite number"),
        (["--heartbeat-interval", "0"], "--heartbeat-interval must be a finite number"),
        (["--heartbeat-interval", "inf"], "--heartbeat-interval must be a finite number"),
        (["--serve", "localhost"], "--serve expects HOST:PORT"),
        (["--serve", "127.0.0.1:http"], "--serve expects HOST:PORT"),
        (["--serve", "127.0.0.1:70000"], "--serve expects HOST:PORT with a port 1-65535"),
        (["--serve", "127.0.0.1:0"], "--serve expects HOST:PORT with a port 1-65535"),
        # The length rule lives in ingest's shared parse_symbols; any clear refusal names it.
        (["--symbols", "BTC-" + "X" * 40], "BTC-" + "X" * 40),
        (["--allow-foreign-feed"], "--allow-foreign-feed only applies to --live"),
        (["--speed", "nan"], "--speed must be a finite number >= 0"),
        (["--url", "not-a-url"], "is not a feed URL"),
        (["--param", "fast"], "--param expects key=value"),
        (["--param", "fast=3"], "--param needs --strategy"),
        (["--strategy", "sma_cross", "--param", "fast=nan"], "must be a finite number"),
        (["--strategy", "sma_cross", "--param", "fast=abc"], "sma_cross expects a number for fast"),
        (["--strategy", "sma_cross", "--param", "nope=1"], "unknown parameter(s) nope"),
        (["--strategy", "sma_cross", "--param", "fraction=-1"], "fraction must be positive"),
    ],
)
def test_bad_input_is_refused_with_one_clear_error_and_no_rows(paper, args, message):
    before = row_counts()
    with pytest.raises(CommandError) as refused:
        runtrader("--paper", "--duration", "5", *args)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert row_counts() == before


def test_serve_on_a_port_in_use_is_refused_before_trading(paper):
    sock, port = listening_port()
    before = row_counts()
    try:
        with pytest.raises(CommandError, match=rf"--serve 127.0.0.1:{port}: cannot listen there"):
            runtrader("--paper", "--duration", "5", "--serve", f"127.0.0.1:{port}")
    finally:
        sock.close()
    assert row_counts() == before


# -- live gate -----------------------------------------------------------------------------------


@pytest.fixture
def live_account(paper, settings):
    """A live Binance account with every condition for live trading met."""
    settings.LIVE_TRADING = True
    settings.BINANCE_API_KEY, settings.BINANCE_API_SECRET = "key", "secret"
    # Nothing may reach an exchange from these tests: a closed local port.
    settings.EXCHANGE_API_URLS = {"binance": "http://127.0.0.1:9/api/v3"}
    return Account.objects.create(
        name="main", mode="live", venue="binance", initial_capital=Decimal(1000), cash=1000
    )


def test_live_without_a_feed_refuses_to_trade_on_simulated_prices(live_account):
    before = row_counts()
    with pytest.raises(CommandError, match="refusing to trade live on the sim feed") as refused:
        runtrader("--live", "--account", "main", "--duration", "5")
    assert "needs --feed binance, or --allow-foreign-feed" in str(refused.value)
    with pytest.raises(CommandError, match="refusing to trade live on the polygon feed"):
        runtrader("--live", "--account", "main", "--feed", "polygon", "--duration", "5")
    assert row_counts() == before


def test_paper_on_a_live_account_is_refused(live_account):
    before = row_counts()
    for mode in (["--paper"], []):
        with pytest.raises(CommandError, match="account 'main' is live: refusing to write"):
            runtrader(*mode, "--account", "main", "--duration", "5")
    assert row_counts() == before
    assert not Fill.objects.filter(order__account=live_account).exists()


# -- one engine per account ----------------------------------------------------------------------


def start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*RUN, "--paper", "--timeframe", "1s", "--speed", "10", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_one_runtrader_per_account_and_a_killed_one_frees_it_at_once(subprocess_env, paper):
    first = start(subprocess_env, "--snapshot-interval", "0.3")
    try:
        # Trading for sure: the engine stored a snapshot of the account.
        wait_for(
            lambda: PortfolioSnapshot.objects.filter(account=paper).exists()
            or first.poll() is not None,
            60,
            "the first engine",
        )
        assert first.poll() is None, first.stderr.read()[-2000:]
        second = subprocess.run(
            [*RUN, "--paper", "--duration", "5"],
            cwd=ROOT,
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert "account 'paper' is already being traded by another runtrader" in lines[0]
        assert f"pid {first.pid} " in lines[0]
        os.kill(first.pid, signal.SIGKILL)  # no cleanup at all; not even reaped yet
        third = subprocess.run(
            [*RUN, "--paper", "--timeframe", "1s", "--speed", "10", "--duration", "3"],
            cwd=ROOT,
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert third.returncode == 0, third.stderr[-3000:]
        assert "events=" in third.stdout
    finally:
        first.kill()
        first.communicate(timeout=10)


def test_serve_also_serves_static_files(subprocess_env, paper):
    port = free_port()
    proc = start(subprocess_env, "--serve", f"127.0.0.1:{port}", "--duration", "120")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                url = f"http://127.0.0.1:{port}/static/admin/css/base.css"
                with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
                    status, kind, body = response.status, response.headers, response.read()
                break
            except OSError:
                assert time.monotonic() < deadline, "server never answered"
                assert proc.poll() is None, proc.stderr.read()[-2000:]
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert status == 200 and kind["Content-Type"].startswith("text/css")
    assert b"body" in body and len(body) > 1000
    assert proc.returncode == 0, err[-3000:]


def _cut_lock_session(pid: int) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
            [f"rrr lock pid {pid} %"],
        )
        assert cur.fetchone() == (True,), "the engine's lock session"


def _lock_sessions(pid: int) -> int:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
            [f"rrr lock pid {pid} %"],
        )
        return cur.fetchone()[0]


@pytest.fixture
def running_engine(subprocess_env, paper):
    """A runtrader on PostgreSQL that has written a snapshot."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("only a database session can be cut from outside; a flock cannot be lost")
    proc = start(subprocess_env, "--snapshot-interval", "0.3")
    try:
        wait_for(
            lambda: PortfolioSnapshot.objects.filter(account=paper).exists()
            or proc.poll() is not None,
            60,
            "the engine",
        )
        yield proc
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_an_engine_whose_lock_connection_is_cut_takes_the_lock_back(running_engine):
    _cut_lock_session(running_engine.pid)
    wait_for(lambda: _lock_sessions(running_engine.pid) == 0, 10, "the cut")
    wait_for(lambda: _lock_sessions(running_engine.pid) == 1, 30, "the lock taken back")
    assert running_engine.poll() is None, "the engine stopped over a cut connection"


def test_an_engine_whose_lock_another_process_took_stops_loudly(running_engine, paper):
    from rrr_site.locks import owner_lock

    rival = owner_lock(f"runtrader-account:{paper.pk}")
    for _ in range(5):  # the engine may take it back first; then cut it again
        _cut_lock_session(running_engine.pid)
        deadline = time.monotonic() + 3
        while not rival.acquire() and time.monotonic() < deadline:
            time.sleep(0.05)
        if rival.held:
            break
        wait_for(lambda: _lock_sessions(running_engine.pid) == 1, 30, "the engine's lock")
    assert rival.held, "the rival never got the lock"
    try:
        _, err = running_engine.communicate(timeout=60)
    finally:
        rival.release()
    assert running_engine.returncode != 0
    assert "lost the lock of account 'paper'" in err.strip().splitlines()[-1]
