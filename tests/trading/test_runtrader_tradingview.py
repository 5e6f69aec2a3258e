"""``manage.py runtrader --strategy tradingview_signal`` trades alerts posted to the webhook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client

from marketdata.models import TradingViewSignal
from marketdata.tradingview import tradingview_hook_create
from monitoring.models import SystemEvent
from tests.polling import wait_for
from trading.models import Account, Order, Position

ROOT = Path(__file__).resolve().parents[2]
RUN = [
    sys.executable,
    "manage.py",
    "runtrader",
    "--paper",
    "--timeframe",
    "1s",
    "--symbols",
    "BTC-USD",
    "--strategy",
    "tradingview_signal",
    "--heartbeat-interval",
    "2",
    "--no-worker",
]


def held() -> float:
    row = Position.objects.filter(symbol__name="BTC-USD").first()
    return float(row.quantity) if row else 0.0


@pytest.mark.timeout(180)
def test_runtrader_trades_a_posted_alert_through_risk(subprocess_env):
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    cache.clear()
    _, token = tradingview_hook_create(account=Account.objects.get(name="paper"), name="cli")
    proc = subprocess.Popen(
        RUN, cwd=ROOT, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(
            lambda: SystemEvent.objects.filter(kind="session_start").exists(),
            120,
            "the engine to start",
        )
        alert = {
            "id": "cli-1",
            "ticker": "BTCUSD",
            "close": "50000",
            "action": "buy",
            "position_size": "1",
        }
        response = Client().post(
            f"/hooks/tradingview/{token}", data=json.dumps(alert), content_type="application/json"
        )
        assert response.status_code == 201
        wait_for(lambda: held() > 0, 60, "the alert's position")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert TradingViewSignal.objects.get().status == "delivered"
    order = Order.objects.get(strategy="tradingview_signal")
    assert order.side == "buy" and order.status == "filled"
