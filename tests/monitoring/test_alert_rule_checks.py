"""Alert rules are checked when saved: each channel's address, the source, the escalation."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from monitoring.channels.targets import target_problem
from monitoring.models import AlertRule, AuditLog

ADD = "/admin/monitoring/alertrule/add/"


def form(**fields) -> dict:
    """The admin's add form, filled in as a person would, with ``fields`` changed."""
    return {
        "name": "ops",
        "source": "*",
        "kind": "",
        "min_severity": "warning",
        "account": "",
        "symbol": "",
        "channel": "log",
        "target": "",
        "enabled": "on",
        "cooldown_seconds": "300",
        "max_per_hour": "30",
        "escalate_after_minutes": "",
        "escalation_channel": "",
        "escalation_target": "",
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"source": "riks"}, "source"),
        ({"channel": "email", "target": "ops at example.com"}, "target"),
        ({"channel": "email", "target": "ops@example.com, nobody"}, "target"),
        ({"channel": "email", "target": ""}, "target"),
        ({"channel": "slack", "target": "#ops"}, "target"),
        ({"channel": "webhook", "target": "ftp://files.example.com/in"}, "target"),
        ({"channel": "webhook", "target": "file:///etc/passwd"}, "target"),
        ({"channel": "telegram", "target": "my chat"}, "target"),
        ({"channel": "sms", "target": "555-1234"}, "target"),
        ({"channel": "push", "target": "nosuchuser"}, "target"),
        ({"channel": "webhook", "target": "env:NOT A NAME"}, "target"),
        ({"escalate_after_minutes": "5"}, "escalation_channel"),
        ({"escalation_channel": "sms", "escalation_target": "+15551234567"},
         "escalate_after_minutes"),
        ({"escalate_after_minutes": "5", "escalation_channel": "sms",
          "escalation_target": "call me"}, "escalation_target"),
    ],
)  # fmt: skip
@pytest.mark.django_db
def test_admin_refuses_a_malformed_rule_with_the_reason(admin_client, fields, field):
    response = admin_client.post(ADD, form(**fields))
    assert response.status_code == 200  # the form again, with the error beside the field
    assert field in response.context["adminform"].form.errors
    assert not AlertRule.objects.exists()
    assert not AuditLog.objects.filter(action__startswith="alert_rule").exists()


@pytest.mark.django_db
def test_admin_saves_a_well_formed_rule_and_audits_it(admin_client, admin_user):
    fields = form(
        channel="email",
        target="ops@example.com, risk@example.com",
        escalate_after_minutes="10",
        escalation_channel="push",
        escalation_target=admin_user.username,
    )
    response = admin_client.post(ADD, fields)
    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = AlertRule.objects.get(name="ops")
    assert rule.escalation_target == admin_user.username
    assert AuditLog.objects.filter(action="alert_rule.create", object_id=str(rule.pk)).exists()


@pytest.mark.parametrize(
    ("channel", "target"),
    [
        ("log", ""),
        ("email", "ops@example.com"),
        ("slack", "https://hooks.slack.com/services/T000/B000/XXXX"),
        ("webhook", "http://127.0.0.1:9000/hook"),
        ("telegram", "-1001234567890"),
        ("telegram", "@rrr_alerts"),
        ("sms", "+15551234567"),
        ("webhook", "env:OPS_HOOK_URL"),
    ],
)
def test_well_formed_addresses_pass(channel, target):
    assert target_problem(channel, target) is None


@pytest.mark.django_db
def test_rules_made_in_code_are_checked_by_full_clean():
    with pytest.raises(ValidationError) as caught:
        AlertRule(name="x", channel="sms", target="12").full_clean()
    assert "E.164" in str(caught.value.message_dict["target"])
