"""``runtrader --paper`` end to end on the simulated market, and crash safety under SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Sum

from marketdata.models import Bar
from monitoring.models import SystemEvent
from trading.models import Account, Fill, Order, PortfolioSnapshot, Position

ROOT = Path(__file__).resolve().parents[2]
RUN = [sys.executable, "manage.py", "runtrader", "--paper", "--timeframe", "1s",
       "--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=8",
       "--snapshot-interval", "1", "--heartbeat-interval", "2"]


def assert_books_agree(account: Account) -> None:
    """Orders, fills, positions and cash tell one consistent story."""
    account.refresh_from_db()
    for order in account.orders.all():
        filled = order.fills.aggregate(q=Sum("quantity"))["q"] or Decimal(0)
        assert filled == order.filled_quantity, (order.client_order_id, order.status)
        assert order.filled_quantity <= order.quantity
    cash = account.initial_capital
    for fill in account.fills.all():
        signed = fill.quantity if fill.side == "buy" else -fill.quantity
        cash -= signed * fill.price + fill.fee
    assert cash == account.cash
    for position in account.positions.all():
        fills = account.fills.filter(symbol=position.symbol)
        bought = fills.filter(side="buy").aggregate(q=Sum("quantity"))["q"] or 0
        sold = fills.filter(side="sell").aggregate(q=Sum("quantity"))["q"] or 0
        assert position.quantity == bought - sold, position.symbol_id


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


def wait_for(predicate, timeout: float, what: str) -> None:
    """Poll ``predicate`` until true or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


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
