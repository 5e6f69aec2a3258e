"""Several engines on one database: one ``runtrader`` per account, trading at the same time."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from risk.models import RiskLimit
from tests.trading.books import assert_books_agree
from trading.models import Account, Fill, Order, PortfolioSnapshot, Position

pytestmark = pytest.mark.timeout(240)
ROOT = Path(__file__).resolve().parents[2]
ENGINES = {"paper": ["BTC-USD", "ETH-USD"], "second": ["SOL-USD", "AVAX-USD"]}


def engine(env: dict[str, str], account: str, symbols: list[str]) -> subprocess.Popen:
    """Start a real runtrader on ``account``: fast crossings so both trade within seconds."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "runtrader", "--paper", "--account", account,
         "--symbols", ",".join(symbols), "--timeframe", "1s", "--speed", "10",
         "--strategy", "sma_cross", "--param", "fast=2", "--param", "slow=4",
         "--snapshot-interval", "0.5", "--duration", "25"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="several engines share PostgreSQL")
def test_two_runtraders_on_two_accounts_trade_at_once_and_keep_to_their_own_books(
    subprocess_env, paper
):
    second = Account.objects.create(
        name="second", mode="paper", initial_capital=Decimal(100_000), cash=Decimal(100_000)
    )
    for limit in RiskLimit.objects.filter(account=paper):  # the same limits as the first
        limit.pk, limit.account = None, second
        limit.save()
    procs = {name: engine(subprocess_env, name, symbols) for name, symbols in ENGINES.items()}
    outputs = {name: proc.communicate(timeout=200) for name, proc in procs.items()}
    for name, proc in procs.items():
        assert proc.returncode == 0, (name, outputs[name][1][-3000:])
    for name, symbols in ENGINES.items():
        account = Account.objects.get(name=name)
        fills = Fill.objects.filter(order__account=account)
        assert fills.exists(), f"{name} never traded"
        assert PortfolioSnapshot.objects.filter(account=account).exists()
        # Its rows name its own symbols only: neither engine wrote into the other's account.
        assert set(Order.objects.filter(account=account).values_list("symbol__name", flat=True)
                   ) <= set(symbols)
        assert set(Position.objects.filter(account=account).values_list("symbol__name", flat=True)
                   ) <= set(symbols)
        assert_books_agree(account)
    both = Fill.objects.values_list("order__account__name", flat=True).distinct()
    assert set(both) == set(ENGINES)
