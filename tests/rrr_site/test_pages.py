"""Every dashboard page renders for a viewer, needs a login, and actions check the role."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from tests.factories import AccountFactory, BarFactory, OrderFactory, SymbolFactory, UserFactory
from trading.models import Fill, PortfolioSnapshot

pytestmark = pytest.mark.django_db

PAGES = ["/", "/market/", "/orders/", "/performance/", "/risk/", "/models/", "/backtests/",
         "/system/"]  # fmt: skip


def _user(role: str, account=None):
    user = UserFactory(username=f"u-{role}")
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    if account is not None:
        account.members.add(user)
    return user


@pytest.fixture
def world():
    symbol = SymbolFactory(name="BTC-USD")
    account = AccountFactory(name="desk")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(60):
        BarFactory(symbol=symbol, timeframe="1m", ts=start + timedelta(minutes=i))
    order = OrderFactory(account=account, symbol=symbol, status="filled", strategy="sma_cross")
    Fill.objects.create(
        account=account, order=order, symbol=symbol, side=order.side, quantity=order.quantity,
        price=Decimal("100.5"), fee=Decimal("0.01"), ts=start + timedelta(minutes=30),
    )  # fmt: skip
    for day in range(40):
        PortfolioSnapshot.objects.create(
            account=account, ts=start + timedelta(days=day), cash=Decimal(100000),
            equity=Decimal(100000 + 100 * day), total_value=Decimal(100000 + 100 * day),
            drawdown=0.0,
        )  # fmt: skip
    return account, order


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_a_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_every_page_renders_for_a_viewer(client, world):
    account, order = world
    client.force_login(_user("viewer", account))
    for path in [*PAGES, f"/orders/{order.pk}/", "/market/?symbol=BTC-USD&tf=1m"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert b"desk" in response.content or path in {"/models/", "/backtests/", "/system/"}
    # A viewer gets no trading buttons nor order ticket.
    assert b'id="btn-halt"' not in client.get("/").content
    assert b'id="ticket"' not in client.get("/market/").content


def test_a_trader_gets_the_controls_and_the_ticket(client, world):
    account, _ = world
    client.force_login(_user("trader", account))
    assert b'id="btn-halt"' in client.get("/").content
    page = client.get("/market/").content.decode()
    assert 'id="ticket"' in page and '"markers": [{"ts": "2026-01-01T00:30:00+00:00"' in page


def test_history_filters_and_csv(client, world):
    account, order = world
    client.force_login(_user("viewer", account))
    assert client.get("/orders/?side=sideways").status_code == 400
    assert client.get("/orders/?since=yesterday-ish").status_code == 400
    page = client.get("/orders/?side=sell&symbol=ETH-USD").content.decode()
    assert "No orders match." in page
    rows = b"".join(client.get("/orders/export/fills.csv").streaming_content).decode().splitlines()
    assert rows[0].startswith("id,ts,symbol") and len(rows) == 2 and "100.5" in rows[1]
    rows = b"".join(client.get("/orders/export/orders.csv").streaming_content).decode().splitlines()
    assert len(rows) == 2 and rows[1].startswith(f"{order.pk},")
    assert client.get("/orders/export/positions.csv").status_code == 404


def test_a_foreign_order_is_not_found(client, world):
    _, order = world
    client.force_login(_user("trader", AccountFactory(name="other")))
    assert client.get(f"/orders/{order.pk}/").status_code == 404


def test_the_order_detail_shows_its_transitions(client, world):
    account, order = world
    client.force_login(_user("viewer", account))
    page = client.get(f"/orders/{order.pk}/").content.decode()
    assert "created" in page and "fill" in page and "100.5" in page


def test_the_launch_form_is_for_traders_and_posts_to_the_api(client, world):
    account, _ = world
    client.force_login(_user("viewer", account))
    page = client.get("/backtests/").content.decode()
    assert 'id="launch"' not in page and "backtests.js" not in page
    client.force_login(_user("trader", account))
    page = client.get("/backtests/").content.decode()
    assert 'id="launch" data-api="/api/v1/backtests"' in page and "rrr/backtests.js" in page
    # The API is the one way in: its refusals are per field and write nothing.
    form = {"strategy": "sma_cross", "symbols": ["BTC-USD"], "timeframe": "1h",
            "start": "2026-01-03T00:00:00Z", "end": "2026-01-01T00:00:00Z"}  # fmt: skip
    response = client.post("/api/v1/backtests", form, content_type="application/json")
    from backtesting.models import BacktestRun

    assert response.status_code == 400 and BacktestRun.objects.count() == 0


def test_a_run_page_shows_its_stored_progress(client, world):
    from backtesting.models import BacktestRun
    from backtesting.services import Costs, backtest_run_create

    account, _ = world
    run = backtest_run_create(
        strategy="sma_cross", params={}, symbols=["BTC-USD"], timeframe="1m",
        start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 2, tzinfo=UTC),
        costs=Costs(), data_source="sim",
    )  # fmt: skip
    BacktestRun.objects.filter(pk=run.pk).update(status="running", progress=0.37)
    client.force_login(_user("viewer", account))
    page = client.get(f"/backtests/{run.pk}/").content.decode()
    assert 'id="bt-percent">37<' in page and 'data-status="running"' in page


def test_model_activation_is_for_admins(client):
    from tests.factories import MLModelFactory

    model = MLModelFactory()
    client.force_login(_user("trader"))
    assert client.post(f"/models/{model.pk}/activate").status_code == 403
    client.force_login(_user("admin"))
    client.post(f"/models/{model.pk}/activate", {"force": "1"})
    model.refresh_from_db()
    assert model.active


def test_plotly_is_served_from_the_package(client, world):
    from django.contrib.staticfiles import finders

    assert finders.find("vendor/plotly.min.js").endswith("plotly/package_data/plotly.min.js")
    assert finders.find("rrr/live.js")
