"""``runtrader --paper`` end to end on the simulated market, and crash safety under SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from marketdata.models import Bar
from monitoring.models import SystemEvent
from tests.polling import wait_for
from tests.trading.books import assert_books_agree
from trading.models import Account, Fill, Order, PortfolioSnapshot, Position

ROOT = Path(__file__).resolve().parents[2]
# --skip-checks: the system checks' URL imports (the research stack: scipy, statsmodels, arch)
# would double each start; `manage.py check` runs in CI on its own.
RUN = [sys.executable, "manage.py", "runtrader", "--paper", "--timeframe", "1s",
       "--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=8",
       "--snapshot-interval", "1", "--heartbeat-interval", "2", "--skip-checks"]


@pytest.fixture
def paper_account(subprocess_env):
    """Default symbols and the paper account in the test database."""
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    return Account.objects.get(name="paper")


def test_runtrader_paper_end_to_end(subprocess_env, paper_account):
    result = subprocess.run([*RUN, "--duration", "20", "--speed", "30"], cwd=ROOT,
                            env=subprocess_env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "events=" in result.stdout
    assert Bar.objects.filter(timeframe="1s").count() > 100
    assert Bar.objects.filter(timeframe="1m").exists()
    assert Order.objects.filter(account=paper_account).count() > 0
    assert Fill.objects.filter(account=paper_account).count() > 0
    assert PortfolioSnapshot.objects.filter(account=paper_account).count() >= 5
    assert SystemEvent.objects.filter(component="runtrader", kind="heartbeat").exists()
    assert_books_agree(paper_account)
    last = PortfolioSnapshot.objects.filter(account=paper_account).order_by("-ts").first()
    paper_account.refresh_from_db()
    assert last.cash == paper_account.cash


def test_sigkill_then_restart_loses_and_duplicates_nothing(subprocess_env, paper_account):
    proc = subprocess.Popen([*RUN, "--speed", "40"], cwd=ROOT, env=subprocess_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: Fill.objects.filter(account=paper_account).count() >= 6, 120,
                 "fills from the first run")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    fills_before = set(Fill.objects.values_list("order_id", "venue_trade_id"))
    assert_books_agree(paper_account)

    result = subprocess.run([*RUN, "--duration", "10", "--speed", "40"], cwd=ROOT,
                            env=subprocess_env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    fills_after = set(Fill.objects.values_list("order_id", "venue_trade_id"))
    assert fills_before <= fills_after, "a fill stored before the crash disappeared"
    assert_books_agree(paper_account)
    assert Position.objects.filter(account=paper_account).exists()
