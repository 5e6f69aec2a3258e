"""Alerts reach people: each channel against a local server speaking its API; dedup, rate
limits, escalation (injected clock), retries, acknowledge/resolve, risk events as the source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from monitoring.alerts import alert_acknowledge, alert_raise, alert_resolve, alerts_tick
from monitoring.models import Alert, AlertDelivery, AlertRule, AuditLog
from tests.fakes.notify import FakeAlertServices
from tests.fakes.threaded import served

SID, TOKEN = "AC" + "0" * 32, "f00dfeed0123456789abcdef"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def services(settings):
    server = FakeAlertServices(telegram_token="123:TEST", twilio=(SID, TOKEN))
    with served(server):
        settings.SLACK_WEBHOOK_BASE = f"{server.url}/services"
        settings.TELEGRAM_API_URL = server.url
        settings.TELEGRAM_BOT_TOKEN = "123:TEST"
        settings.TWILIO_API_URL = server.url
        settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = SID, TOKEN
        settings.TWILIO_FROM_NUMBER = "+15005550006"
        yield server


def rule(name: str, channel: str, target: str, **fields) -> AlertRule:
    fields = {"source": "*", "min_severity": "warning", **fields}
    return AlertRule.objects.create(name=name, channel=channel, target=target, **fields)


@pytest.mark.django_db(transaction=True)
def test_each_channel_delivers_the_alert_over_its_own_api(services, monkeypatch):
    rule("slack", "slack", "https://hooks.slack.com/services/T000/B000/XXXX")
    rule("telegram", "telegram", "4242")
    rule("sms", "sms", "+15551234567")
    monkeypatch.setenv("RRR_TEST_HOOK", f"{services.url}/hook/ops")
    rule("webhook", "webhook", "env:RRR_TEST_HOOK")
    rule("email", "email", "ops@example.com, risk@example.com")
    matched = alert_raise(
        source="risk",
        kind="max_drawdown_pct",
        severity="critical",
        account="paper",
        message="drawdown 21.5 % beyond the 20 % limit: kill switch",
        context={"drawdown": 0.215},
    )
    assert matched == 5
    assert "drawdown 21.5 %" in str(services.slack[0])
    assert services.telegram[0]["chat_id"] in ("4242", 4242)
    assert "kill switch" in services.telegram[0]["text"]
    assert services.sms[0]["To"] == "+15551234567"
    assert services.sms[0]["From"] == "+15005550006"
    assert "max_drawdown_pct" in services.sms[0]["Body"]
    assert services.webhook[0]["path"] == "/hook/ops"
    assert "drawdown 21.5 %" in services.webhook[0]["message"]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com", "risk@example.com"]
    assert mail.outbox[0].subject == "[RRR CRITICAL] max_drawdown_pct"
    assert "drawdown: 0.215" in mail.outbox[0].body
    assert set(AlertDelivery.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db(transaction=True)
def test_rules_match_kind_severity_account_and_symbol(services):
    rule(
        "eth only",
        "slack",
        "https://x/services/T/B/C",
        kind="large_fill",
        symbol="ETH-USD",
        account="paper",
        min_severity="info",
    )
    assert (
        alert_raise(
            kind="large_fill", severity="info", account="paper", symbol="BTC-USD", message="btc"
        )
        == 0
    )
    assert (
        alert_raise(
            kind="large_fill",
            severity="info",
            account="other",
            symbol="ETH-USD",
            message="other account",
        )
        == 0
    )
    assert (
        alert_raise(
            kind="reject_burst",
            severity="error",
            account="paper",
            symbol="ETH-USD",
            message="wrong kind",
        )
        == 0
    )
    assert (
        alert_raise(
            kind="large_fill",
            severity="debug",
            account="paper",
            symbol="ETH-USD",
            message="below severity",
        )
        == 0
    )
    assert (
        alert_raise(
            kind="large_fill",
            severity="info",
            account="paper",
            symbol="ETH-USD",
            message="eth fill",
        )
        == 1
    )
    assert len(services.slack) == 1 and "eth fill" in str(services.slack[0])


@pytest.mark.django_db(transaction=True)
def test_a_burst_within_the_cooldown_is_counted_not_resent(services):
    rule("slack", "slack", "https://x/services/T/B/C", cooldown_seconds=300, max_per_hour=0)
    for i in range(200):  # bench/monitoring_overhead.py does 1,000
        alert_raise(
            kind="feed_stale",
            severity="error",
            account="paper",
            message=f"no data for {i} s",
            now=T0 + timedelta(milliseconds=i),
        )
    assert len(services.slack) == 1
    alert = Alert.objects.get()
    assert (alert.occurrences, alert.deduplicated) == (200, 199)
    # After the cooldown the same alert is sent again, saying how often it was seen.
    alert_raise(
        kind="feed_stale",
        severity="error",
        account="paper",
        message="still nothing",
        now=T0 + timedelta(seconds=301),
    )
    assert len(services.slack) == 2
    assert "seen 201 times" in str(services.slack[1])


@pytest.mark.django_db(transaction=True)
def test_rate_limit_stops_sending_but_keeps_the_record(services):
    rule("slack", "slack", "https://x/services/T/B/C", cooldown_seconds=0, max_per_hour=3)
    for i in range(5):
        alert_raise(kind=f"k{i}", severity="error", message=f"m{i}", now=T0 + timedelta(minutes=i))
    assert len(services.slack) == 3
    assert AlertDelivery.objects.filter(status="rate_limited").count() == 2
    alert_raise(kind="k9", severity="error", message="later", now=T0 + timedelta(minutes=70))
    assert len(services.slack) == 4


@pytest.mark.django_db(transaction=True)
def test_unacknowledged_critical_alerts_escalate_to_the_next_channel(services, admin_user):
    rule(
        "pager",
        "slack",
        "https://x/services/T/B/C",
        escalate_after_minutes=10,
        escalation_channel="sms",
        escalation_target="+15550001111",
    )
    alert_raise(
        kind="heartbeat_missing",
        severity="critical",
        account="paper",
        message="no heartbeat from runtrader for 120 s",
        now=T0,
    )
    assert alerts_tick(now=T0 + timedelta(minutes=9, seconds=59)) == {"escalated": 0, "retried": 0}
    assert services.sms == []
    assert alerts_tick(now=T0 + timedelta(minutes=10))["escalated"] == 1
    assert services.sms[0]["To"] == "+15550001111"
    assert "ESCALATED" in services.sms[0]["Body"]
    assert alerts_tick(now=T0 + timedelta(minutes=30))["escalated"] == 0  # once only
    # An acknowledged one never escalates.
    alert_raise(
        kind="heartbeat_missing",
        severity="critical",
        account="live",
        message="no heartbeat",
        now=T0,
    )
    second = Alert.objects.get(account="live")
    alert_acknowledge(alert=second, actor=admin_user, now=T0 + timedelta(minutes=1))
    assert alerts_tick(now=T0 + timedelta(minutes=20))["escalated"] == 0
    assert len(services.sms) == 1
    entry = AuditLog.objects.get(action="alert_acknowledged")
    assert entry.actor == admin_user and entry.after["state"] == "acknowledged"


@pytest.mark.django_db(transaction=True)
def test_a_failed_delivery_is_retried_and_a_resolved_alert_opens_anew(services, admin_user):
    rule("slack", "slack", "https://x/services/T/B/C", cooldown_seconds=3600)
    services.fail_next = 1
    alert_raise(kind="task_failure", severity="error", message="backtest 7 failed", now=T0)
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.attempts, services.slack) == ("failed", 1, [])
    assert alerts_tick(now=T0 + timedelta(seconds=10))["retried"] == 0  # backing off
    assert alerts_tick(now=T0 + timedelta(seconds=31))["retried"] == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert "backtest 7 failed" in str(services.slack[0])
    alert_resolve(alert=Alert.objects.get(), actor=admin_user, now=T0 + timedelta(minutes=1))
    alert_raise(
        kind="task_failure",
        severity="error",
        message="backtest 8 failed",
        now=T0 + timedelta(minutes=2),
    )
    assert Alert.objects.count() == 2 and len(services.slack) == 2  # cooldown is per alert


@pytest.mark.django_db(transaction=True)
def test_stored_risk_events_raise_alerts(services, paper):
    from risk.engine.events import RiskEventRecord, Severity
    from risk.services import risk_events_record

    rule("risk", "slack", "https://x/services/T/B/C", kind="max_daily_loss_pct")
    risk_events_record(
        account=paper,
        records=[
            RiskEventRecord(
                Severity.CRITICAL,
                "max_daily_loss_pct",
                "daily loss 5.2 % beyond 5 %: halted",
                {},
                paper.name,
                T0,
            )
        ],
        publish=False,
    )
    assert "daily loss 5.2 %" in str(services.slack[0])
    assert Alert.objects.get().account == paper.name
