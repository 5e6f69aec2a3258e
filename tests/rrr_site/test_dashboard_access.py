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
