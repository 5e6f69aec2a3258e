"""An ``env:NAME`` alert address: its value is read when sending and never shows in a failed
delivery's error (stored and shown in the admin) or the logs; e-mail over a local SMTP server."""

from __future__ import annotations

import pytest

from monitoring.alerts import alert_raise
from monitoring.models import AlertDelivery, AlertRule
from tests.fakes.smtp import FakeSMTPServer
from tests.fakes.threaded import served


@pytest.mark.django_db(transaction=True)
def test_an_env_target_value_never_shows_in_a_failed_delivery(settings, monkeypatch):
    """env:NAME on an e-mail rule: the SMTP backend's error quoted the address it could not
    parse, so a rule naming env:DATABASE_URL put the database password in the admin."""
    secret = "postgres://rrr:hunter2-pw@db:5432/rrr"
    monkeypatch.setenv("RRR_TEST_SECRET", secret)
    server = FakeSMTPServer()
    with served(server):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        settings.EMAIL_USE_TLS = False
        AlertRule.objects.create(name="leak", channel="email", target="env:RRR_TEST_SECRET")
        AlertRule.objects.create(name="ok", channel="email", target="ops@example.com")
        alert_raise(source="risk", kind="halt", severity="critical", message="halted")
    failed = AlertDelivery.objects.get(alert__rule__name="leak")
    assert failed.status == "failed"
    assert "hunter2" not in failed.error and "db:5432" not in failed.error
    assert "<env:RRR_TEST_SECRET>" in failed.error
    assert failed.target == "env:RRR_TEST_SECRET"
    sent = AlertDelivery.objects.get(alert__rule__name="ok")
    assert sent.status == "sent"
    assert [m["to"] for m in server.messages] == [["ops@example.com"]]
    assert "halted" in server.messages[0]["data"]
