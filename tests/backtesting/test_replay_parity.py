"""A recorded paper session replayed through the engine agrees trade for trade."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Max, Min
from django.utils import timezone

from marketdata.models import TradeTick
from trading.models import Account, Fill, Order

ROOT = Path(__file__).resolve().parents[2]


def replay(account: str, start, end) -> dict:
    """Run ``backtest --replay-account`` and return its JSON report."""
    out = StringIO()
    call_command("backtest", "--replay-account", account, "--start", start.isoformat(),
                 "--end", end.isoformat(), "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_replay_of_a_paper_session_reports_zero_drift_then_catches_a_foreign_order(
        subprocess_env, paper):
    result = subprocess.run(
        [sys.executable, "manage.py", "runtrader", "--paper", "--timeframe", "1s",
         "--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=8",
         "--symbols", "BTC-USD,ETH-USD", "--duration", "12", "--speed", "30", "--seed", "11"],
        cwd=ROOT, env=subprocess_env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Fill.objects.filter(account=paper).count() > 0
    span = TradeTick.objects.aggregate(start=Min("ts"), end=Max("ts"))

    report = replay("paper", span["start"], span["end"])
    assert report["zero_drift"], json.dumps(report["drifts"][:4])
    assert report["replay_orders"] == report["live_orders"] > 0
    assert report["replay_fills"] == report["live_fills"] > 0

    # An order the strategy never sent (an operator's) is drift the report must show.
    first = Order.objects.filter(account=paper).order_by("created_at").first()
    Order.objects.create(account=Account.objects.get(name="paper"), symbol=first.symbol,
                         side="buy", type="market", quantity=Decimal("0.01"), status="filled",
                         filled_quantity=Decimal("0.01"), created_at=first.created_at,
                         updated_at=timezone.now(), strategy="operator")
    drifted = replay("paper", span["start"], span["end"])
    assert not drifted["zero_drift"]
    assert drifted["live_orders"] == report["live_orders"] + 1
    assert any(d["kind"] in {"order", "missing_in_replay"} for d in drifted["drifts"])


def test_replay_without_a_recorded_session_is_refused(paper):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no recorded runtrader session"):
        replay("paper", timezone.now(), timezone.now())


def test_replay_of_a_session_with_several_strategies_runs_each_of_them(subprocess_env, paper):
    # runtrader --strategy twice records a list of strategies (no single one): the replay must
    # run each, under its id, or it would trade nothing and call every live order drift.
    result = subprocess.run(
        [sys.executable, "manage.py", "runtrader", "--paper", "--timeframe", "1s",
         "--strategy", "sma_cross", "--strategy", "rsi_reversion", "--symbols", "BTC-USD",
         "--duration", "12", "--speed", "30", "--seed", "11", "--skip-checks"],
        cwd=ROOT, env=subprocess_env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    strategies = set(Order.objects.filter(account=paper).values_list("strategy", flat=True))
    assert strategies == {"sma_cross", "rsi_reversion"}, strategies
    span = TradeTick.objects.aggregate(start=Min("ts"), end=Max("ts"))

    report = replay("paper", span["start"], span["end"])
    assert report["zero_drift"], json.dumps(report["drifts"][:4])
    assert report["replay_orders"] == report["live_orders"] > 0
