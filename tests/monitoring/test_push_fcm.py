"""Push alerts reach Android phones through FCM's HTTP v1 API, authorised by a service account's
signed JWT grant (a local server speaking Google's token endpoint and FCM v1)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from monitoring.alerts import alert_raise
from monitoring.channels.fcm import SCOPE, TOKENS, fcm_send
from monitoring.channels.senders import DeliveryFailed
from monitoring.models import Alert, AlertDelivery, AlertRule, PushDevice
from tests.factories import UserFactory
from tests.fakes.fcm import FakeFcm
from tests.fakes.threaded import served
from tests.monitoring.test_push import apns  # noqa: F401  (the local APNs fixture)

EMAIL = "rrr-push@rrr-test.iam.gserviceaccount.com"
PROJECT = "rrr-test"


def _rsa_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def fcm(settings, key):
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    server = FakeFcm(public, client_email=EMAIL, project=PROJECT)
    TOKENS.forget()
    with served(server):
        settings.FCM_API_URL = server.url
        settings.FCM_SERVICE_ACCOUNT_FILE, settings.FCM_PROJECT_ID = "", ""
        settings.FCM_SERVICE_ACCOUNT_JSON = json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "k1d",
                "private_key": _rsa_pem(key),
                "client_email": EMAIL,
                "token_uri": server.token_uri,
            }
        )
        yield server
    TOKENS.forget()


def _device(user, device_id: str, token: str, platform: str = "android") -> PushDevice:
    return PushDevice.objects.create(user=user, device_id=device_id, platform=platform, token=token)


@pytest.mark.django_db(transaction=True)
def test_an_alert_reaches_android_through_fcm_and_iphones_through_apns(fcm, apns):  # noqa: F811
    alice = UserFactory(username="alice")
    _device(alice, "pixel", "fcm-token-pixel")
    _device(alice, "iphone", "aa" * 32, platform="ios")
    _device(UserFactory(username="bob"), "bob-phone", "fcm-token-bob")
    AlertRule.objects.create(name="push", source="*", channel="push", target="alice")
    alert_raise(kind="max_drawdown_pct", severity="critical", account="paper",
                symbol="BTC-USD", message="drawdown 21 %: kill switch")  # fmt: skip
    # The grant: signed by the service account's key (the server verified it), for FCM only.
    [(claims, header)] = fcm.grants
    assert (claims["iss"], claims["aud"], claims["scope"]) == (EMAIL, fcm.token_uri, SCOPE)
    assert claims["exp"] - claims["iat"] == 3600
    assert (header["alg"], header["kid"]) == ("RS256", "k1d")
    [message] = fcm.accepted
    alert = Alert.objects.get()
    assert message["token"] == "fcm-token-pixel"
    assert message["notification"]["title"] == "[RRR CRITICAL] max_drawdown_pct"
    assert "kill switch" in message["notification"]["body"]
    assert message["data"] == {
        "alert_id": str(alert.pk), "kind": "max_drawdown_pct", "severity": "critical",
        "account": "paper", "symbol": "BTC-USD", "escalation": "0",
    }  # fmt: skip
    assert message["android"]["priority"] == "high"
    [(token, _, payload)] = apns.accepted
    assert token == "aa" * 32 and payload["rrr"]["alert_id"] == alert.pk
    assert AlertDelivery.objects.get().status == "sent"


@pytest.mark.django_db(transaction=True)
def test_an_unregistered_token_deactivates_its_device_only(fcm):
    alice = UserFactory(username="alice")
    _device(alice, "old", "fcm-gone")
    _device(alice, "new", "fcm-live")
    fcm.unregistered.add("fcm-gone")
    AlertRule.objects.create(name="push", source="*", channel="push", target="alice")
    alert_raise(kind="feed_stale", severity="error", message="no data")
    assert [m["token"] for m in fcm.accepted] == ["fcm-live"]
    assert not PushDevice.objects.get(device_id="old").active
    assert PushDevice.objects.get(device_id="new").active
    assert AlertDelivery.objects.get().status == "sent"


@pytest.mark.django_db(transaction=True)
def test_a_delivery_no_phone_got_is_failed_for_a_retry(fcm):
    alice = UserFactory(username="alice")
    _device(alice, "old", "fcm-gone")
    fcm.unregistered.add("fcm-gone")
    AlertRule.objects.create(name="push", source="*", channel="push", target="alice")
    alert_raise(kind="feed_stale", severity="error", message="no data")
    delivery = AlertDelivery.objects.get()
    assert delivery.status == "failed" and "unregistered" in delivery.error


@pytest.mark.django_db
def test_429_and_5xx_are_retried_after_the_servers_wait(fcm):
    device = _device(UserFactory(), "pixel", "fcm-token")
    fcm.failures = [(429, "2"), (503, "")]
    waits: list[float] = []
    counts = fcm_send([device], "t", "b", {"n": 1}, sleep=waits.append)
    assert counts == {"sent": 1, "gone": 0, "failed": 0}
    assert waits == [2.0, 1.0]  # Retry-After, then the back-off's second step
    assert fcm.accepted[0]["data"] == {"n": "1"}


@pytest.mark.django_db
def test_retries_end_and_a_long_retry_after_is_not_waited_for(fcm):
    device = _device(UserFactory(), "pixel", "fcm-token")
    fcm.failures = [(503, "0")] * 4
    waits: list[float] = []
    with pytest.raises(DeliveryFailed, match="503 UNAVAILABLE"):
        fcm_send([device], "t", "b", sleep=waits.append)
    assert waits == [0.0, 0.0, 0.0] and fcm.accepted == []
    fcm.failures = [(429, "3600")]
    with pytest.raises(DeliveryFailed, match="429 QUOTA_EXCEEDED"):
        fcm_send([device], "t", "b", sleep=waits.append)
    assert len(waits) == 3  # an hour's wait is left to alerts_tick's retry
    device.refresh_from_db()
    assert device.active


@pytest.mark.django_db
def test_the_access_token_is_reused_and_replaced_when_revoked(fcm):
    device = _device(UserFactory(), "pixel", "fcm-token")
    fcm_send([device], "one", "b")
    fcm_send([device], "two", "b")
    assert len(fcm.grants) == 1
    fcm.issued.clear()  # revoked: the next send is 401, a new grant, then delivered
    fcm_send([device], "three", "b")
    assert len(fcm.grants) == 2
    assert [m["notification"]["title"] for m in fcm.accepted] == ["one", "two", "three"]


@pytest.mark.django_db
def test_a_grant_signed_by_another_key_is_refused(fcm, settings):
    device = _device(UserFactory(), "pixel", "fcm-token")
    account = json.loads(settings.FCM_SERVICE_ACCOUNT_JSON)
    account["private_key"] = _rsa_pem(rsa.generate_private_key(public_exponent=65537,
                                                                key_size=2048))  # fmt: skip
    settings.FCM_SERVICE_ACCOUNT_JSON = json.dumps(account)
    with pytest.raises(DeliveryFailed, match="invalid_grant"):
        fcm_send([device], "t", "b")
    assert fcm.grants == [] and fcm.accepted == []


@pytest.mark.django_db
def test_the_service_account_comes_from_a_file_or_fails_clearly(fcm, settings, tmp_path):
    device = _device(UserFactory(), "pixel", "fcm-token")
    path = tmp_path / "service-account.json"
    path.write_text(settings.FCM_SERVICE_ACCOUNT_JSON)
    settings.FCM_SERVICE_ACCOUNT_JSON, settings.FCM_SERVICE_ACCOUNT_FILE = "", str(path)
    assert fcm_send([device], "t", "b")["sent"] == 1
    settings.FCM_SERVICE_ACCOUNT_FILE = ""
    with pytest.raises(
        DeliveryFailed, match="FCM_SERVICE_ACCOUNT_FILE or FCM_SERVICE_ACCOUNT_JSON"
    ):
        fcm_send([device], "t", "b")
    settings.FCM_SERVICE_ACCOUNT_JSON = json.dumps({"client_email": EMAIL})
    with pytest.raises(DeliveryFailed, match="lacks private_key, token_uri, project_id"):
        fcm_send([device], "t", "b")
    settings.FCM_SERVICE_ACCOUNT_JSON = "{not json"
    with pytest.raises(DeliveryFailed, match="not JSON"):
        fcm_send([device], "t", "b")
