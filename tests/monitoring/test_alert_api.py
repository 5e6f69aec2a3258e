"""Alert endpoints: list what the user may see, acknowledge/resolve (traders, audited); devices."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from rest_framework.test import APIClient

from monitoring.alerts import alert_raise
from monitoring.models import Alert, AlertRule, AuditLog, PushDevice
from tests.factories import UserFactory
from trading.models import Account


def _client(name: str, role: str, *accounts: Account):
    user = UserFactory(username=name)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    for account in accounts:
        account.members.add(user)
    client = APIClient()
    client.force_authenticate(user)
    return client, user


@pytest.fixture
def accounts(db):
    call_command("bootstrap", "--no-admin", stdout=io.StringIO())
    paper = Account.objects.get(name="paper")
    other = Account.objects.create(name="other", initial_capital=1000, cash=1000)
    AlertRule.objects.create(name="all", source="*", channel="log", min_severity="info")
    alert_raise(kind="large_fill", severity="warning", account="paper", message="paper fill")
    alert_raise(kind="large_fill", severity="warning", account="other", message="other fill")
    alert_raise(kind="task_failure", severity="error", message="task failed")
    return paper, other


def test_users_see_their_accounts_alerts_and_system_ones(accounts):
    paper, _ = accounts
    viewer, _ = _client("v", "viewer", paper)
    seen = {a["message"] for a in viewer.get("/api/v1/alerts").json()}
    assert seen == {"paper fill", "task failed"}
    assert viewer.get("/api/v1/alerts?state=bogus").status_code == 400
    assert APIClient().get("/api/v1/alerts").status_code == 401


def test_traders_acknowledge_and_resolve_audited_viewers_cannot(accounts):
    paper, _ = accounts
    viewer, _ = _client("v", "viewer", paper)
    trader, user = _client("t", "trader", paper)
    mine = Alert.objects.get(account="paper")
    theirs = Alert.objects.get(account="other")
    assert viewer.post(f"/api/v1/alerts/{mine.pk}/acknowledge").status_code == 403
    assert trader.post(f"/api/v1/alerts/{theirs.pk}/acknowledge").status_code == 404
    body = trader.post(f"/api/v1/alerts/{mine.pk}/acknowledge").json()
    assert (body["state"], body["acknowledged_by"]) == ("acknowledged", "t")
    body = trader.post(f"/api/v1/alerts/{mine.pk}/resolve").json()
    assert body["state"] == "resolved"
    actions = list(
        AuditLog.objects.filter(actor=user).order_by("at").values_list("action", flat=True)
    )
    assert actions == ["alert_acknowledged", "alert_resolved"]


def test_devices_register_once_per_user_and_device(accounts):
    paper, _ = accounts
    client, user = _client("v", "viewer", paper)
    device = {"device_id": "ios-6F1C", "platform": "ios", "token": "a" * 64}
    assert client.post("/api/v1/devices", device, format="json").status_code == 201
    reply = client.post("/api/v1/devices", {**device, "token": "b" * 64}, format="json")
    assert reply.status_code == 201 and "token" not in reply.json()
    assert PushDevice.objects.get(user=user).token == "b" * 64
    bad = client.post("/api/v1/devices", {"device_id": "x y", "platform": "nokia"}, format="json")
    assert bad.status_code == 400 and {"device_id", "platform", "token"} <= set(bad.json())
    for platform, token in [("ios", "../../3/device/" + "a" * 64), ("ios", "a" * 31),
                            ("android", "tok en" * 10), ("android", "short")]:  # fmt: skip
        hostile = {"device_id": "d1", "platform": platform, "token": token}
        reply = client.post("/api/v1/devices", hostile, format="json")
        assert reply.status_code == 400 and "token" in reply.json(), (platform, token)
    android = {"device_id": "pixel", "platform": "android", "token": "fcm:APA91b-_x" * 10}
    assert client.post("/api/v1/devices", android, format="json").status_code == 201
    assert client.delete("/api/v1/devices/ios-6F1C").status_code == 204
    assert client.delete("/api/v1/devices/ios-6F1C").status_code == 404


def test_a_user_s_devices_are_capped_with_a_clear_400(accounts):
    from monitoring.push import DEVICES_PER_USER

    paper, _ = accounts
    client, user = _client("v", "viewer", paper)
    other, _ = _client("w", "viewer", paper)
    for i in range(DEVICES_PER_USER):
        device = {"device_id": f"d{i}", "platform": "ios", "token": f"{i:064x}"}
        assert client.post("/api/v1/devices", device, format="json").status_code == 201
    one_more = {"device_id": "extra", "platform": "ios", "token": "e" * 64}
    reply = client.post("/api/v1/devices", one_more, format="json")
    assert reply.status_code == 400
    assert reply.json()["detail"] == (
        f"at most {DEVICES_PER_USER} devices per user: unregister one first "
        "(DELETE /api/v1/devices/<device_id>)"
    )
    assert PushDevice.objects.filter(user=user).count() == DEVICES_PER_USER
    renewed = {"device_id": "d3", "platform": "ios", "token": "f" * 64}  # a known device: fine
    assert client.post("/api/v1/devices", renewed, format="json").status_code == 201
    assert other.post("/api/v1/devices", one_more, format="json").status_code == 201  # per user
    assert client.delete("/api/v1/devices/d0").status_code == 204
    assert client.post("/api/v1/devices", one_more, format="json").status_code == 201
    assert PushDevice.objects.filter(user=user).count() == DEVICES_PER_USER


def test_the_admin_acknowledges_and_resolves_alerts(accounts, admin_client):
    alert = Alert.objects.get(account="paper")
    url = "/admin/monitoring/alert/"
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(f"{url}{alert.pk}/change/").status_code == 200
    reply = admin_client.post(url, {"action": "acknowledge", "_selected_action": [alert.pk]})
    assert reply.status_code == 302
    alert.refresh_from_db()
    assert alert.state == "acknowledged"
    admin_client.post(url, {"action": "resolve", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert AuditLog.objects.filter(action="alert_resolved", object_id=str(alert.pk)).exists()


def test_a_token_registered_by_another_user_leaves_the_first_user(accounts):
    """A shared phone: the next user's registration takes the token over, audited; the first
    user's row stays (their device list) but no longer receives pushes."""
    paper, _ = accounts
    first, alice = _client("alice", "viewer", paper)
    second, bob = _client("bob", "viewer", paper)
    phone = {"device_id": "shared-ipad", "platform": "ios", "token": "c" * 64}
    assert first.post("/api/v1/devices", phone, format="json").status_code == 201
    assert second.post("/api/v1/devices", phone, format="json").status_code == 201
    rows = {d.user_id: d.active for d in PushDevice.objects.filter(token="c" * 64)}
    assert rows == {alice.pk: False, bob.pk: True}
    released = AuditLog.objects.get(action="push_device.released")
    assert released.actor == bob and "c" * 64 not in str(released.before) + str(released.after)
    # The same token on another platform is another device: untouched.
    android = {"device_id": "pixel", "platform": "android", "token": "c" * 64}
    assert first.post("/api/v1/devices", android, format="json").status_code == 201
    assert PushDevice.objects.get(user=bob, device_id="shared-ipad").active
