"""``runtrader`` trades with the account's stored buying-power setting."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.runtime_harness import db, running
from trading.engine.buying_power import BuyingPowerPolicy, Margin
from trading.models import Account

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


async def test_the_engine_uses_the_accounts_leverage_and_policy(paper):
    await db(Account.objects.filter(pk=paper.pk).update)(
        leverage=Decimal("2.5"), buying_power_policy="reject"
    )
    async with running(paper) as runtime:
        margin = runtime.oms.portfolio(paper.name).margin
    assert margin == Margin(Decimal("2.5"), BuyingPowerPolicy.REJECT)
