"""Push alerts reach iPhones through APNs' HTTP/2 API (a local HTTP/2 server speaking it)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from monitoring.alerts import alert_raise
from monitoring.models import AlertDelivery, AlertRule, PushDevice
from tests.factories import UserFactory
from tests.fakes.apns import FakeApns
from tests.fakes.threaded import served


@pytest.fixture
def apns(settings):
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    server = FakeApns(public, team_id="TEAM123456", key_id="KEY1234567", topic="org.rrr.app")
    with served(server):
        settings.APNS_URL = server.url
        settings.APNS_TEAM_ID, settings.APNS_KEY_ID = "TEAM123456", "KEY1234567"
        settings.APNS_AUTH_KEY, settings.APNS_TOPIC = private, "org.rrr.app"
        yield server


@pytest.mark.django_db(transaction=True)
def test_a_critical_alert_is_pushed_to_the_named_users_devices(apns):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    PushDevice.objects.create(user=alice, device_id="a1", platform="ios", token="aa" * 32)
    PushDevice.objects.create(user=alice, device_id="a2", platform="ios", token="ab" * 32)
    PushDevice.objects.create(user=bob, device_id="b1", platform="ios", token="bb" * 32)
    apns.gone.add("ab" * 32)  # alice deleted the app on her second phone
    AlertRule.objects.create(name="push", source="*", channel="push", target="alice")
    alert_raise(
        kind="max_drawdown_pct",
        severity="critical",
        account="paper",
        message="drawdown 21 %: kill switch",
    )
    tokens = [token for token, _, _ in apns.accepted]
    assert tokens == ["aa" * 32]
    _, headers, payload = apns.accepted[0]
    assert headers["apns-push-type"] == "alert" and headers["apns-topic"] == "org.rrr.app"
    assert payload["aps"]["alert"]["title"] == "[RRR CRITICAL] max_drawdown_pct"
    assert "kill switch" in payload["aps"]["alert"]["body"]
    assert not PushDevice.objects.get(device_id="a2").active
    assert AlertDelivery.objects.get().status == "sent"


@pytest.mark.django_db(transaction=True)
def test_a_wrong_key_fails_the_delivery_for_a_retry(apns, settings):
    alice = UserFactory(username="alice")
    PushDevice.objects.create(user=alice, device_id="a1", platform="ios", token="aa" * 32)
    other = ec.generate_private_key(ec.SECP256R1())
    settings.APNS_AUTH_KEY = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    AlertRule.objects.create(name="push", source="*", channel="push", target="alice")
    alert_raise(kind="feed_stale", severity="error", message="no data")
    delivery = AlertDelivery.objects.get()
    assert delivery.status == "failed" and "InvalidProviderToken" in delivery.error
    assert apns.accepted == []
