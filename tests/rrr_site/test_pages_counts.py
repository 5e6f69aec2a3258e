"""The system page's counts of large tables: the planner's estimate on PostgreSQL, marked."""

from __future__ import annotations

import pytest
from django.db import connection

from monitoring.stats_selectors import row_count
from tests.factories import AccountFactory, OrderFactory
from trading.models import Order

pytestmark = pytest.mark.django_db


def test_row_count_estimates_only_on_postgresql_and_counts_below_the_threshold():
    account = AccountFactory(name="desk")
    for _ in range(30):
        OrderFactory(account=account)
    rows = Order.objects.filter(account_id__in=[account.pk])
    assert row_count(rows, estimate=False) == (30, False)
    assert row_count(rows, estimate=True) == (30, False)  # below the threshold: counted
    guess, estimated = row_count(rows, estimate=True, exact_below=0)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE trading_order")
        guess, estimated = row_count(rows, estimate=True, exact_below=0)
        assert estimated and 15 <= guess <= 60  # the planner's figure from fresh statistics
    else:
        assert (guess, estimated) == (30, False)


def test_the_system_page_marks_estimates(client, settings):
    from django.contrib.auth.models import Group

    from tests.factories import UserFactory

    user = UserFactory(username="sys")
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    client.force_login(user)
    page = client.get("/system/").content.decode()
    assert "<td>fills</td><td>0</td>" in page and "≈" not in page  # small: exact


@pytest.mark.django_db
def test_performance_waits_for_the_background_tally_then_reads_what_it_stored():
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from tests.factories import SymbolFactory
    from trading.models import Fill, PortfolioSnapshot
    from trading.portfolio_selectors import performance_of

    account, symbol = AccountFactory(name="bounded"), SymbolFactory(name="BTC-USD")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i, side in enumerate(["buy", "sell"]):
        order = OrderFactory(account=account, symbol=symbol, side=side, status="filled")
        Fill.objects.create(
            account=account, order=order, symbol=symbol, side=side, quantity=Decimal(1),
            price=Decimal(100 + i), fee=Decimal(0), ts=start + timedelta(hours=i),
        )  # fmt: skip
        PortfolioSnapshot.objects.create(
            account=account, ts=start + timedelta(hours=i), cash=Decimal(100000),
            equity=Decimal(100000 + i), total_value=Decimal(100000 + i), drawdown=0.0,
        )  # fmt: skip
    from trading.trade_tally import WAITING

    first = performance_of(account=account, bucket_seconds=3600)
    assert first["note"] == WAITING and first["metrics"]["trades"] is None
    assert first["metrics"]["total_return"] is not None  # the equity's figures are there
    assert first["trades_as_of"] is None
    # The load queued the refresh task, which tests run inline (django-q2 sync): stored now.
    full = performance_of(account=account, bucket_seconds=3600)
    assert full["note"] == "" and full["trades_as_of"] is not None and not full["trades_behind"]
    assert full["metrics"]["trades"] == 1 and full["metrics"]["win_rate"] == 1.0
