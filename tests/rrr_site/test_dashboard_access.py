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
    RiskEvent.objects.create(
        account=theirs,
        kind="trading_state",
        severity="warning",
        message="theirs-event",
        ts=timezone.now(),
    )
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
        system_event_record(
            component="runtrader",
            kind="heartbeat",
            message=f"{name}-beat",
            context={"account": name, "orders": 7},
        )
        system_event_record(
            component="runtrader",
            kind="session_start",
            message=f"session_start {name}",
            context={"account": name},
        )
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
