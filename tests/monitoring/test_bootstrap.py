"""``manage.py bootstrap`` creates the defaults once and never a fixed password."""

from __future__ import annotations

import re
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from marketdata.models import Symbol
from risk.models import RiskLimit, TradingState
from trading.models import Account

pytestmark = pytest.mark.django_db


def run_bootstrap() -> str:
    """Run the command and return what it printed."""
    out = StringIO()
    call_command("bootstrap", stdout=out)
    return out.getvalue()


def test_bootstrap_creates_defaults_and_is_idempotent(settings):
    first = run_bootstrap()
    prices = dict(Symbol.objects.values_list("name", "reference_price"))
    assert prices == {
        "BTC-USD": 50000.0,
        "ETH-USD": 3000.0,
        "SOL-USD": 100.0,
        "MATIC-USD": 0.80,
        "AVAX-USD": 35.0,
    }
    account = Account.objects.get(name="paper")
    assert account.mode == "paper" and account.cash == settings.INITIAL_CAPITAL
    limits = dict(RiskLimit.objects.filter(account=account).values_list("kind", "value"))
    assert limits["max_position_pct"] == Decimal("0.20")
    assert limits["max_daily_loss_pct"] == Decimal("0.05")
    assert TradingState.objects.get(account=account).state == "active"
    assert "password" in first
    counts = (
        Symbol.objects.count(),
        Account.objects.count(),
        RiskLimit.objects.count(),
        get_user_model().objects.count(),
    )

    second = run_bootstrap()
    assert counts == (
        Symbol.objects.count(),
        Account.objects.count(),
        RiskLimit.objects.count(),
        get_user_model().objects.count(),
    )
    assert "password" not in second


def test_admin_password_is_random_and_works():
    passwords = []
    for _ in range(2):
        output = run_bootstrap()
        password = re.search(r"password: (\S+)", output).group(1)
        user = get_user_model().objects.get(username="admin")
        assert user.is_superuser and user.check_password(password)
        passwords.append(password)
        user.delete()
    assert passwords[0] != passwords[1] and len(passwords[0]) >= 20
