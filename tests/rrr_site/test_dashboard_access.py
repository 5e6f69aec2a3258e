"""The dashboard shows a user only the accounts granted to them (staff see every account)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from risk.models import RiskEvent
from tests.factories import AccountFactory, OrderFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_accounts():
    mine, theirs = AccountFactory(name="mine-acct"), AccountFactory(name="theirs-acct")
    OrderFactory(account=mine, signal="mine-order")
    OrderFactory(account=theirs, signal="theirs-order")
    RiskEvent.objects.create(account=theirs, kind="trading_state", severity="warning",
                             message="theirs-event", ts=timezone.now())
    return mine, theirs


def test_a_member_sees_only_granted_accounts(client, two_accounts):
    mine, _ = two_accounts
    user = UserFactory(username="member")
    mine.members.add(user)
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "mine-acct" in page
    assert "theirs-acct" not in page
    assert "theirs-event" not in page
    _, theirs = two_accounts
    # Asking for a foreign account's page shows one's own account instead, never theirs.
    foreign = client.get(f"/risk/?account={theirs.pk}").content.decode()
    assert "theirs-event" not in foreign and "theirs-acct" not in foreign


def test_staff_see_every_account(client, two_accounts):
    client.force_login(UserFactory(username="ops", is_staff=True))
    page = client.get("/").content.decode()
    assert "mine-acct" in page and "theirs-acct" in page  # both in the account picker
    theirs = two_accounts[1]
    assert "theirs-event" in client.get(f"/risk/?account={theirs.pk}").content.decode()


@pytest.fixture
def two_engines(two_accounts):
    """Both accounts' engines registered in this process, with a heartbeat and a session each."""
    from monitoring.engine.health import component_register, component_unregister
    from monitoring.services import system_event_record

    names = [account.name for account in two_accounts]
    for name in names:
        component_register(f"engine:{name}", lambda name=name: (True, f"{name}-probe"))
        system_event_record(component="runtrader", kind="heartbeat",
                            message=f"{name}-beat", context={"account": name, "orders": 7})
        system_event_record(component="runtrader", kind="session_start",
                            message=f"session_start {name}", context={"account": name})
    yield two_accounts
    for name in names:
        component_unregister(f"engine:{name}")


@pytest.mark.parametrize("url", ["/", "/system/"])
def test_a_member_sees_only_the_engines_of_granted_accounts(client, two_engines, url):
    mine, _ = two_engines
    user = UserFactory(username="member")
    mine.members.add(user)
    client.force_login(user)
    page = client.get(url).content.decode()
    assert "engine:mine-acct" in page
    assert "theirs-acct" not in page  # its engine, probe, heartbeat and session
    if url == "/system/":
        assert "mine-acct-beat" in page and "session_start mine-acct" in page


def test_a_user_without_accounts_sees_no_engine(client, two_engines):
    client.force_login(UserFactory(username="nobody"))
    page = client.get("/system/").content.decode()
    assert "mine-acct" not in page and "theirs-acct" not in page


def test_staff_see_every_engine(client, two_engines):
    client.force_login(UserFactory(username="ops", is_staff=True))
    page = client.get("/system/").content.decode()
    for name in ("mine-acct", "theirs-acct"):
        assert f"engine:{name}" in page and f"{name}-beat" in page
        assert f"session_start {name}" in page


@pytest.fixture
def research():
    """A model version and a backtest run: every viewer's to read, nobody's below that."""
    from datetime import UTC, datetime

    from backtesting.services import Costs, backtest_run_create
    from tests.factories import MLModelFactory

    MLModelFactory(name="secret-model")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    run = backtest_run_create(
        strategy="sma_cross", params={"fast": 7, "slow": 31}, symbols=["BTC-USD"],
        timeframe="1m", start=start, end=start.replace(day=2), costs=Costs(), data_source="sim",
    )  # fmt: skip
    return ["/models/", "/backtests/", f"/backtests/{run.pk}/"]


def test_research_pages_need_the_viewer_role_as_the_api_does(client, research):
    from django.contrib.auth.models import Group

    user = UserFactory(username="no-role")
    client.force_login(user)
    for url in research:
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"secret-model" not in response.content and b"sma_cross" not in response.content
    assert client.get("/api/v1/backtests").status_code == 403  # the API refused already
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    client.force_login(user)  # a fresh request user: the role is cached on the old one
    assert b"secret-model" in client.get(research[0]).content
    for url in research[1:]:
        assert b"sma_cross" in client.get(url).content, url


def test_the_market_page_needs_the_viewer_role_as_the_api_does(client):
    from datetime import UTC, datetime

    from django.contrib.auth.models import Group

    from tests.factories import BarFactory, SymbolFactory

    symbol = SymbolFactory(name="SECRET-USD")
    BarFactory(symbol=symbol, timeframe="1m", ts=datetime(2026, 1, 1, tzinfo=UTC))
    user = UserFactory(username="no-role-market")
    client.force_login(user)
    response = client.get("/market/?symbol=SECRET-USD")
    assert response.status_code == 403
    assert b"SECRET-USD" not in response.content
    # The API's read of the same bars refused already.
    assert client.get("/api/v1/marketdata/symbols/SECRET-USD/bars").status_code == 403
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    client.force_login(user)  # a fresh request user: the role is cached on the old one
    page = client.get("/market/?symbol=SECRET-USD")
    assert page.status_code == 200 and b"SECRET-USD" in page.content
