"""The account's buying-power setting: stored, constrained, and handed to the engine."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from trading.engine.buying_power import BuyingPowerPolicy, Margin
from trading.models import Account

pytestmark = pytest.mark.django_db


def make(name: str, **fields) -> Account:
    return Account.objects.create(
        name=name, initial_capital=Decimal(1000), cash=Decimal(1000), **fields
    )


def test_accounts_default_to_cash_only_reduce() -> None:
    assert make("plain").margin() == Margin(Decimal(1), BuyingPowerPolicy.REDUCE)


def test_leverage_and_policy_reach_the_engine() -> None:
    account = make("geared", leverage=Decimal("2.5"), buying_power_policy="reject")
    account.refresh_from_db()
    assert account.margin() == Margin(Decimal("2.5"), BuyingPowerPolicy.REJECT)


def test_the_database_refuses_leverage_below_one() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        make("short-of-one", leverage=Decimal("0.5"))
