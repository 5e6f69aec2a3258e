"""A person's halt, pause, resume or flatten is a risk event and an alert (saying who did it),
routed by AlertRules like the engine's own; alert texts show money to the cent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from monitoring.alerts import alert_raise
from monitoring.engine.alerting import money_for_humans, render
from monitoring.models import Alert, AlertRule
from risk.models import RiskEvent
from tests.factories import UserFactory

SLACK = "https://hooks.slack.com/services/T000/B000/XXXX"


@pytest.fixture
def trader(paper):
    user = UserFactory(username="alice")
    user.groups.add(Group.objects.get_or_create(name="trader")[0])
    paper.members.add(user)
    client = APIClient()
    client.force_authenticate(user)
    return client


def _rule(kind: str = "", **fields) -> AlertRule:
    fields = {"source": "risk", "min_severity": "warning", "kind": kind, **fields}
    name = f"risk {kind or 'any'}"
    return AlertRule.objects.create(name=name, channel="slack", target=SLACK, **fields)


@pytest.mark.django_db(transaction=True)
def test_a_halt_and_a_resume_through_the_api_alert_with_who_did_it(slack, paper, trader):
    _rule("manual_halt")
    _rule("manual_resume")
    assert (
        trader.post(
            f"/api/v1/accounts/{paper.pk}/halt", {"reason": "news"}, format="json"
        ).status_code
        == 200
    )
    halt = RiskEvent.objects.get(kind="manual_halt")
    assert halt.severity == "critical" and halt.account == paper
    assert halt.context["by"] == "alice" and halt.context["previous_state"] == "active"
    assert "paper halted by alice: news" in str(slack.slack[0])
    assert Alert.objects.get(kind="manual_halt").account == paper.name

    # Halting a halted account changes nothing and says nothing more.
    trader.post(f"/api/v1/accounts/{paper.pk}/halt", {"reason": "again"}, format="json")
    assert RiskEvent.objects.filter(kind="manual_halt").count() == 1

    assert trader.post(f"/api/v1/accounts/{paper.pk}/resume", {}, format="json").status_code == 200
    assert RiskEvent.objects.get(kind="manual_resume").context["by"] == "alice"
    assert len(slack.slack) == 2 and "paper resumed by alice" in str(slack.slack[1])


@pytest.mark.django_db(transaction=True)
def test_a_flatten_alerts_and_the_risk_engines_own_changes_raise_no_manual_event(
    slack, paper, trader
):
    from risk.engine.events import ModeChangeRequest
    from risk.services import trading_mode_apply
    from trading.engine.hooks import TradingMode

    _rule()
    assert trader.post(f"/api/v1/accounts/{paper.pk}/flatten", {}, format="json").status_code == 202
    flat = RiskEvent.objects.get(kind="manual_flatten")
    assert flat.context["by"] == "alice" and "flattened by alice" in flat.message
    assert "paper flattened by alice" in str(slack.slack[0])

    request = ModeChangeRequest(paper.name, TradingMode.HALTED, "drawdown 21 %", "max_drawdown_pct")
    trading_mode_apply(account=paper, request=request, publish=False)
    assert not RiskEvent.objects.filter(kind__startswith="manual_").exclude(pk=flat.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_halt_from_the_telegram_bot_and_the_admin_alert(slack, paper, admin_client):
    from monitoring.telegram_bot import halt, resume

    _rule()
    user = UserFactory(username="bob")
    halt(paper, user, "telegram")
    assert "paper halted by bob: halted by bob via telegram" in str(slack.slack[0])
    resume(paper, user, "telegram")
    response = admin_client.post(
        "/admin/trading/account/", {"action": "halt_trading", "_selected_action": [paper.pk]}
    )
    assert response.status_code == 302
    assert (
        RiskEvent.objects.filter(kind="manual_halt").order_by("ts", "pk").last().context["by"]
        == "root-admin"
    )
    assert [e.kind for e in RiskEvent.objects.order_by("ts", "pk")] == [
        "manual_halt",
        "manual_resume",
        "manual_halt",
    ]


def test_alert_texts_show_money_to_the_cent_and_keep_other_figures():
    title, body = render(
        "max_drawdown_pct",
        "critical",
        "kill switch",
        1,
        {
            "equity": "99950.01172314000000000000000",
            "daily_pnl": Decimal("-49.994999"),
            "notional": 1234.5,
            "quantity": "0.00012345",
            "reference_price": "0.000012345",
            "mode": "halted",
        },
    )
    assert "equity: 99950.01\n" in body + "\n"
    assert "daily_pnl: -49.99" in body and "notional: 1234.50" in body
    assert "quantity: 0.00012345" in body and "reference_price: 0.000012345" in body
    assert "mode: halted" in body
    assert money_for_humans("equity", "n/a") == "n/a"
    assert money_for_humans("cash", "NaN") == "NaN"
    assert money_for_humans("equity", True) is True
    assert money_for_humans("variance_ratio", "0.123456") == "0.123456"  # not a money key


@pytest.mark.django_db(transaction=True)
def test_a_delivered_alert_shows_the_equity_rounded_but_stores_every_digit(slack):
    AlertRule.objects.create(name="all", source="*", channel="slack", target=SLACK)
    alert_raise(
        source="risk",
        kind="mode_change",
        severity="critical",
        message="halted",
        account="paper",
        context={"equity": "99950.01172314000000000000000"},
    )
    assert "equity: 99950.01" in str(slack.slack[0])
    assert "99950.0117" not in str(slack.slack[0])
    assert Alert.objects.get().context["equity"] == "99950.01172314000000000000000"
