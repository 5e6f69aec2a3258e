"""API order entry checks orders against the engine's own view of the stored account."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db


def test_account_view_is_the_engines_view_of_the_stored_account():
    from risk.models import TradingState
    from tests.factories import AccountFactory, OrderFactory, SymbolFactory
    from trading.engine.hooks import TradingMode
    from trading.models import PortfolioSnapshot, Position
    from trading.order_entry import account_view

    btc, eth = SymbolFactory(name="BTC-USD"), SymbolFactory(name="ETH-USD")
    account = AccountFactory(name="view", cash=Decimal("1000"))
    now = timezone.now()
    for symbol, qty, avg, mark in ((btc, "0.5", "40000", "42000"), (eth, "-2", "3000", None)):
        Position.objects.create(
            account=account, symbol=symbol, quantity=Decimal(qty), average_price=Decimal(avg),
            cost_basis=Decimal(qty) * Decimal(avg), mark_price=mark and Decimal(mark),
            updated_at=now,
        )  # fmt: skip
    Position.objects.create(account=account, symbol=SymbolFactory(name="SOL-USD"), updated_at=now)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for ts, equity in ((day - dt.timedelta(hours=2), "30000"), (day + dt.timedelta(seconds=1),
                                                                 "15500")):  # fmt: skip
        PortfolioSnapshot.objects.create(
            account=account, ts=ts, cash=1, total_value=1, equity=Decimal(equity)
        )
    OrderFactory(account=account, symbol=btc, status="open")
    TradingState.objects.create(account=account, state="reducing", changed_at=now)

    view = account_view(account=account)
    # 1000 + 0.5 * 42000 - 2 * 3000 (unmarked: at its average entry); the flat one is left out.
    assert view.equity == Decimal("16000") and set(view.positions) == {"BTC-USD", "ETH-USD"}
    assert view.peak_equity == Decimal("30000") and view.day_start_equity == Decimal("15500")
    assert view.open_orders == 1 and view.mode == TradingMode.REDUCING
