"""Push alerts to iPhones through APNs' HTTP/2 API (token-based auth, ES256 JWT).

``POST {APNS_URL}/3/device/<device token>`` with ``authorization: bearer <JWT>``,
``apns-topic`` (the app's bundle id), ``apns-push-type: alert`` and the JSON payload
``{"aps": {"alert": {"title", "body"}, "sound": "default"}}``. 200 is delivered; 410
(Unregistered) and 400 BadDeviceToken deactivate the device; anything else fails the delivery
(retried by ``alerts_tick``). The key (.p8), key id, team id and topic come from the environment.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from urllib.parse import quote

import httpx
import jwt
from django.conf import settings

from monitoring.channels.senders import DeliveryFailed

GONE_REASONS = {"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"}


def provider_token(*, team_id: str, key_id: str, key_pem: str, now: float | None = None) -> str:
    """Return the ES256 provider token APNs accepts for up to an hour."""
    issued = int(now if now is not None else time.time())
    return jwt.encode({"iss": team_id, "iat": issued}, key_pem, algorithm="ES256",
                      headers={"kid": key_id})  # fmt: skip


def _key_pem() -> str:
    if settings.APNS_AUTH_KEY:
        return settings.APNS_AUTH_KEY
    if settings.APNS_AUTH_KEY_FILE:
        with open(settings.APNS_AUTH_KEY_FILE, encoding="ascii") as handle:
            return handle.read()
    raise DeliveryFailed("APNS_AUTH_KEY or APNS_AUTH_KEY_FILE is not set")


def apns_send(devices: Iterable, title: str, body: str, data: dict | None = None) -> dict[str, int]:
    """Send one alert to each device over one HTTP/2 connection; return the counts.

    ``data`` goes beside ``aps`` as the payload's ``rrr`` key (the alert's id, kind...).
    """
    if not (settings.APNS_TEAM_ID and settings.APNS_KEY_ID and settings.APNS_TOPIC):
        raise DeliveryFailed("APNS_TEAM_ID, APNS_KEY_ID and APNS_TOPIC are needed for push")
    bearer = provider_token(
        team_id=settings.APNS_TEAM_ID, key_id=settings.APNS_KEY_ID, key_pem=_key_pem()
    )
    headers = {
        "authorization": f"bearer {bearer}",
        "apns-topic": settings.APNS_TOPIC,
        "apns-push-type": "alert",
        "apns-priority": "10",
    }
    payload: dict = {"aps": {"alert": {"title": title, "body": body[:1500]}, "sound": "default"}}
    if data:
        payload["rrr"] = data
    counts = {"sent": 0, "gone": 0, "failed": 0}
    errors = []
    # HTTP/2 only: APNs refuses HTTP/1.1 (a plain http:// URL means h2 with prior knowledge).
    with httpx.Client(http1=False, http2=True, base_url=settings.APNS_URL, timeout=10) as client:
        for device in devices:
            try:
                path = f"/3/device/{quote(device.token, safe='')}"
                reply = client.post(path, json=payload, headers=headers)
            except httpx.HTTPError as exc:
                counts["failed"] += 1
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if reply.status_code == 200:
                counts["sent"] += 1
                continue
            reason = _reason(reply)
            if reply.status_code == 410 or reason in GONE_REASONS:
                counts["gone"] += 1
                device.active = False
                device.save(update_fields=["active", "updated_at"])
            else:
                counts["failed"] += 1
                errors.append(f"{reply.status_code} {reason}")
    if counts["failed"] and not counts["sent"]:
        raise DeliveryFailed(f"APNs refused: {'; '.join(errors)[:500]}")
    return counts


def _reason(reply: httpx.Response) -> str:
    try:
        return str(reply.json().get("reason", ""))
    except ValueError:
        return ""
