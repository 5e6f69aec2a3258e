"""Risk endpoints: limits (traders read, admins write, audited), events, report."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from monitoring.models import AuditLog
from risk.models import RiskEvent, RiskLimit
from risk.services import limits_version
from tests.factories import UserFactory
from trading.models import Account


def _client(name: str, role: str, account: Account) -> APIClient:
    user = UserFactory(username=name)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    account.members.add(user)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def paper(db):
    call_command("bootstrap", "--no-admin", stdout=io.StringIO())
    return Account.objects.get(name="paper")


def test_traders_read_limits_admins_change_them_audited(paper):
    trader, admin = _client("t", "trader", paper), _client("a", "admin", paper)
    limits = trader.get(f"/api/v1/risk/limits?account={paper.pk}").json()
    position = next(x for x in limits if x["kind"] == "max_position_pct")
    url = f"/api/v1/risk/limits/{position['id']}"
    assert trader.patch(url, {"value": "0.1"}, format="json").status_code == 403
    before = limits_version(account=paper)
    changed = admin.patch(url, {"value": "0.1"}, format="json")
    assert changed.status_code == 200 and changed.json()["value"] == "0.1000000000"
    assert limits_version(account=paper) != before  # what a running engine's poll notices
    audit = AuditLog.objects.get(action="risk_limit.update")
    assert (audit.before["value"], audit.after["value"]) == ("0.2000000000", "0.1000000000")
    assert admin.patch(url, {"value": "-1"}, format="json").status_code == 400
    assert admin.patch(url, {"action": "explode"}, format="json").status_code == 400


def test_foreign_limits_and_reports_are_404(paper):
    other = Account.objects.create(name="other", initial_capital=1, cash=1)
    limit = RiskLimit.objects.create(scope="account", account=other, kind="max_open_orders",
                                     value=5)  # fmt: skip
    admin = _client("a", "admin", paper)  # an admin by role, granted only "paper"
    assert admin.patch(f"/api/v1/risk/limits/{limit.pk}", {"value": "1"},
                       format="json").status_code == 404  # fmt: skip
    assert admin.get(f"/api/v1/risk/report?account={other.pk}").status_code == 404
    assert admin.get("/api/v1/risk/report").status_code == 400


def test_events_are_filtered_and_paginated_and_report_has_var_fields(paper):
    viewer = _client("v", "viewer", paper)
    other = Account.objects.create(name="other", initial_capital=1, cash=1)
    now = timezone.now()
    for i, account in enumerate([paper, paper, paper, other]):
        RiskEvent.objects.create(ts=now, account=account, kind="max_position_pct",
                                 severity="info" if i else "critical", message=f"e{i}")  # fmt: skip
    page = viewer.get("/api/v1/risk/events?limit=2").json()
    assert len(page["results"]) == 2 and page["next"]
    rest = viewer.get(page["next"]).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
    critical = viewer.get("/api/v1/risk/events?severity=critical").json()["results"]
    assert [e["message"] for e in critical] == ["e0"]
    assert viewer.get("/api/v1/risk/events?severity=loud").status_code == 400
    report = viewer.get(f"/api/v1/risk/report?account={paper.pk}").json()
    assert report["account"] == "paper" and report["cash"] == "100000.0000000000"
    assert {"var", "drawdown", "limits", "exposure"} <= set(report)
