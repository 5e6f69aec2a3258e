"""The performance page annualises only a history of 30 days or more.

Ten minutes of equity compounded to a year read as an annual return of thousands of percent (a
0.1 % gain in the one hourly point: 1.001 ** 8760 - 1, shown as 6345.2725). Under 30 days the
page shows the figures over the history's own span, labelled so; the API keeps them annualised.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from trading import portfolio_selectors

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def viewer_of(client):
    """Log a viewer member of ``account`` in and return the client."""
    from django.contrib.auth.models import Group

    from tests.factories import UserFactory

    def login(account):
        user = UserFactory()
        user.groups.add(Group.objects.get_or_create(name="viewer")[0])
        account.members.add(user)
        client.force_login(user)
        return client

    return login


def _account_with(equity: list[tuple[timedelta, int]]):
    from tests.factories import AccountFactory
    from trading.models import PortfolioSnapshot

    portfolio_selectors.PERFORMANCE.clear()
    account = AccountFactory(name="desk")
    for offset, value in equity:
        PortfolioSnapshot.objects.create(
            account=account, ts=T0 + offset, cash=Decimal(value), equity=Decimal(value),
            total_value=Decimal(value), drawdown=0.0,
        )  # fmt: skip
    return account


def _moments(values: list[int]) -> tuple[int, float, float]:
    """Return the count, mean and sample deviation of the hourly returns (from 100,000 first)."""
    curve = [100000.0, *map(float, values)]
    r = [b / a - 1 for a, b in zip(curve, curve[1:], strict=False)]
    mean = sum(r) / len(r)
    return len(r), mean, math.sqrt(sum((x - mean) ** 2 for x in r) / (len(r) - 1))


def _rows(page) -> dict[str, str]:
    return {name: value for name, value, _ in page.context["metric_rows"]}


def test_ten_minutes_show_the_span_return_not_an_annual_one(viewer_of):
    account = _account_with([(timedelta(minutes=m), 100000 + 10 * m) for m in range(11)])
    client = viewer_of(account)
    page = client.get("/performance/")
    rows = _rows(page)
    assert "annualised_return" not in rows and "cagr" not in rows  # were 6345.2725 both
    assert rows["total_return"] == "0.0010"  # 100,100 after 100,000: the span's return
    assert "sharpe over the span" in rows and "sharpe" not in rows
    html = page.content.decode()
    assert 'id="not-annualised"' in html and "The equity spans 10\xa0minutes, under 30 days" in html
    # The API's figures stay annualised (its clients scale them themselves).
    body = client.get("/api/v1/performance?bucket=1h").json()
    assert body["periods_per_year"] == 8760
    assert body["metrics"]["annualised_return"] == pytest.approx(1.001**8760 - 1)


def test_two_days_show_ratios_over_the_span(viewer_of):
    values = [100000 + 40 * h + (150 if h % 3 == 0 else 0) for h in range(48)]
    account = _account_with([(timedelta(hours=h), v) for h, v in enumerate(values)])
    page = viewer_of(account).get("/performance/")
    rows = _rows(page)
    n, mean, sd = _moments(values)
    assert rows["sharpe over the span"] == f"{mean / sd * math.sqrt(n):.4f}"
    assert rows["volatility over the span"] == f"{sd * math.sqrt(n):.4f}"
    assert float(rows["sharpe over the span"]) < 10  # annualised it was sqrt(8760 / 48) x more
    assert rows["total_return"] == f"{values[-1] / 100000 - 1:.4f}"
    assert "annualised_return" not in rows
    assert "spans 1\xa0day, 23\xa0hours, under 30 days" in page.content.decode()


def test_thirty_days_and_more_are_annualised(viewer_of):
    values = [100000 + 5 * h + (80 if h % 5 == 0 else 0) for h in range(24 * 31)]
    account = _account_with([(timedelta(hours=h), v) for h, v in enumerate(values)])
    page = viewer_of(account).get("/performance/")
    rows = _rows(page)
    assert {"annualised_return", "cagr", "sharpe", "sortino", "calmar"} <= set(rows)
    assert not any("over the span" in name for name in rows)
    _, mean, sd = _moments(values)
    assert rows["sharpe"] == f"{mean / sd * math.sqrt(8760):.4f}"
    assert 'id="not-annualised"' not in page.content.decode()
