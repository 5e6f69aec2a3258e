"""The out-of-the-box run (`make run`): warmed up, sized to fit the limits, never in the future.

A simulated hour of the `make run` configuration (sma_cross on BTC-USD and ETH-USD, 1m bars,
the bootstrapped account and its default limits) runs as fast as the machine allows: the
sped-up simulation starts an hour back and is held to the wall clock once it catches up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Max
from django.utils import timezone

from marketdata.models import Bar, TradeTick
from monitoring.models import SystemEvent
from risk.models import RiskEvent
from tests.polling import wait_for
from tests.trading.books import assert_books_agree
from trading.engine.indicators import RollingMean
from trading.models import Account, Fill, Order, PortfolioSnapshot, Position
from trading.session_record import warmup_bars

ROOT = Path(__file__).resolve().parents[2]
MAKE_RUN = [sys.executable, "manage.py", "runtrader", "--paper", "--strategy", "sma_cross",
            "--symbols", "BTC-USD,ETH-USD"]
SYMBOLS = ("BTC-USD", "ETH-USD")


@pytest.fixture
def paper_account(subprocess_env):
    """Default symbols, the paper account and its default limits, as `make run` bootstraps."""
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    return Account.objects.get(name="paper")


def session_start() -> dict:
    event = SystemEvent.objects.filter(component="runtrader", kind="session_start").last()
    assert event is not None, "no session_start recorded"
    return event.context


def caught_up(now: datetime) -> bool:
    """Return True once both symbols' stored 1m bars reach the wall clock's last minutes."""
    latest = Bar.objects.filter(timeframe="1m").values("symbol__name").annotate(last=Max("ts"))
    lasts = {row["symbol__name"]: row["last"] for row in latest}
    return all(s in lasts and lasts[s] >= now - timedelta(minutes=3) for s in SYMBOLS)


def first_long_decision(session: dict) -> datetime | None:
    """Return when sma_cross (10/30) first wants to be long, from warm-up and stored bars."""
    bars = [(b.ts, b.symbol, b.close) for b in warmup_bars(session)]
    bars += list(Bar.objects.filter(timeframe="1m", symbol__name__in=SYMBOLS)
                 .values_list("ts", "symbol__name", "close"))
    live_from = min(ts for ts, _, _ in bars if ts >= datetime.fromisoformat(session["sim_start"])
                    - timedelta(minutes=1))
    averages = {s: (RollingMean(10), RollingMean(30)) for s in SYMBOLS}
    for ts, symbol, close in sorted(bars, key=lambda b: (b[0], SYMBOLS.index(b[1]))):
        fast, slow = (a.update(close) for a in averages[symbol])
        if ts >= live_from and fast is not None and slow is not None and fast > slow:
            return ts + timedelta(minutes=1)  # decided when the bar closes
    return None


def test_a_simulated_hour_of_make_run_trades_within_minutes_and_rejects_nothing(
        subprocess_env, paper_account):
    started = timezone.now()
    proc = subprocess.Popen([*MAKE_RUN, "--speed", "0"], cwd=ROOT, env=subprocess_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: proc.poll() is not None or caught_up(timezone.now()), 90,
                 "the simulated hour to reach the wall clock")
        assert proc.poll() is None, proc.stderr.read()[-3000:]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    ended = timezone.now()

    session = session_start()
    assert session["simulated"] is True and session["speed"] == 0
    sim_start = datetime.fromisoformat(session["sim_start"])
    assert started - timedelta(minutes=61) < sim_start < started - timedelta(minutes=59)
    assert len(warmup_bars(session)) == 2 * 31  # SMA 30 and the bar before it, per symbol

    # Trades within minutes: the first order is the first bar on which the strategy wants in.
    orders = Order.objects.filter(account=paper_account).order_by("created_at")
    assert orders.exists(), out
    first = first_long_decision(session)
    assert first is not None and orders.first().created_at == first
    assert Fill.objects.filter(account=paper_account).exists()
    # Sized to fit the default limits: nothing rejected, nothing even reduced.
    assert not orders.filter(status="rejected").exists()
    assert not RiskEvent.objects.filter(account=paper_account).exclude(
        kind__in=["trading_state"]).exists(), list(RiskEvent.objects.values_list("message"))
    for order in orders.filter(side="buy"):
        notional = order.quantity * order.average_fill_price
        assert notional < paper_account.initial_capital * Decimal("0.11")  # 10 % per symbol

    # An hour of bars, and nothing stamped after the moment it was stored.
    for symbol in SYMBOLS:
        assert Bar.objects.filter(timeframe="1m", symbol__name=symbol).count() >= 58
    stamps = [
        Bar.objects.aggregate(t=Max("ts"))["t"],
        TradeTick.objects.aggregate(t=Max("ts"))["t"],
        orders.aggregate(t=Max("created_at"))["t"],
        orders.aggregate(t=Max("updated_at"))["t"],
        Fill.objects.aggregate(t=Max("ts"))["t"],
        PortfolioSnapshot.objects.aggregate(t=Max("ts"))["t"],
        Position.objects.aggregate(t=Max("updated_at"))["t"],
    ]
    assert all(t is not None and t <= ended for t in stamps), (stamps, ended)
    assert_books_agree(paper_account)


def test_a_sped_up_session_never_stores_a_time_ahead_of_the_wall_clock(
        subprocess_env, paper_account):
    result = subprocess.run(
        [*MAKE_RUN, "--timeframe", "1s", "--param", "fast=2", "--param", "slow=3",
         "--speed", "10", "--duration", "4"],
        cwd=ROOT, env=subprocess_env, capture_output=True, text=True, timeout=120)
    ended = timezone.now()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "simulated market from" in result.stdout
    session = session_start()
    assert session["simulated"] is True and session["speed"] == 10
    # Ten times faster for four seconds: it starts 36 s back and ends at the wall clock.
    sim_start = datetime.fromisoformat(session["sim_start"])
    started = datetime.fromisoformat(session["started_at"])
    assert timedelta(seconds=30) < started - sim_start < timedelta(seconds=40)
    assert Order.objects.exists() and TradeTick.objects.exists()
    latest = [
        TradeTick.objects.aggregate(t=Max("ts"))["t"],
        Bar.objects.aggregate(t=Max("ts"))["t"],
        Order.objects.aggregate(t=Max("created_at"))["t"],
        Fill.objects.aggregate(t=Max("ts"))["t"],
    ]
    assert all(t <= ended for t in latest), (latest, ended)
