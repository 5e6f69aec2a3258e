"""``backtest`` attaches the risk checks ``runtrader`` applies (an account's limits and buying
power, a new account's defaults, or none with ``--no-risk``) and annualises on the bars' own
calendar or ``--periods-per-year``; the text output prints counts as integers."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backtesting.models import BacktestRun
from risk.models import RiskLimit
from trading.models import Account

pytestmark = pytest.mark.django_db(transaction=True)
BASE = ["--strategy", "sma_cross", "--symbols", "BTC-USD", "--timeframe", "1h",
        "--start", "2024-01-01", "--end", "2024-02-15", "--source", "sim",
        "--param", "fast=5", "--param", "slow=20"]  # fmt: skip


def backtest(*args: str) -> str:
    out = StringIO()
    call_command("backtest", *BASE, *args, stdout=out)
    return out.getvalue()


def last_run() -> BacktestRun:
    return BacktestRun.objects.order_by("-pk").first()


def test_by_default_the_defaults_of_a_new_account_apply(settings) -> None:
    settings.DEFAULT_ACCOUNT = "no-such-paper"
    out = backtest()
    run = last_run()
    assert run.risk["source"].startswith("defaults of a new account")
    kinds = {limit["kind"] for limit in run.risk["limits"]}
    assert {"max_position_pct", "max_drawdown_pct"} <= kinds
    assert "risk checks      defaults of a new account" in out
    trades = [line for line in out.splitlines() if line.strip().startswith("trades (closed)")]
    assert trades and trades[0].split()[-1].isdigit()  # 47, not 47.0000
    assert "a year is        8,760 bars (24/7" in out
    # The default position limit (20 % of equity) reduced the all-in entries.
    first = run.trades.order_by("entry_ts").first()
    assert first.quantity * first.entry_price <= Decimal("0.2001") * run.initial_capital


def test_an_accounts_own_limits_and_leverage_apply() -> None:
    account = Account.objects.create(
        name="desk", initial_capital=Decimal(1000), cash=Decimal(1000), leverage=Decimal(2)
    )
    RiskLimit.objects.create(
        scope="account", account=account, kind="max_position_pct", value=Decimal("0.1"),
        action="reduce",
    )  # fmt: skip
    out = backtest("--risk-account", "desk")
    run = last_run()
    assert run.risk["source"] == "account desk" and run.risk["leverage"] == "2.00"
    assert [limit["kind"] for limit in run.risk["limits"]] == ["max_position_pct"]
    assert "risk checks      account desk (1 limits, 2.00x)" in out
    for trade in run.trades.all():
        assert trade.quantity * trade.entry_price <= Decimal("0.1001") * run.initial_capital * 2


def test_no_risk_switches_the_checks_off_explicitly() -> None:
    out = backtest("--no-risk", "--json")
    run = BacktestRun.objects.get(pk=json.loads(out.strip().splitlines()[-1])["run"])
    assert run.risk == {"source": "off", "limits": []}
    assert run.status == "completed"


def test_periods_per_year_given_is_used_and_recorded() -> None:
    out = backtest("--no-risk", "--periods-per-year", "252")
    run = last_run()
    assert run.periods_per_year == 252
    assert run.metrics["calendar"]["name"] == "given"
    assert "a year is        252 bars (given" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--risk-account", "nobody"], "--risk-account: no account 'nobody'"),
        (["--periods-per-year", "-5"], "--periods-per-year must be > 0"),
        (["--periods-per-year", "lots"], "--periods-per-year must be a number"),
    ],
)
def test_bad_risk_or_calendar_flags_write_nothing(args, message) -> None:
    with pytest.raises(CommandError, match=message):
        backtest(*args)
    assert not BacktestRun.objects.exists()
