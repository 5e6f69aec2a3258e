"""Push devices: registration per user and device (delivery over APNs is not built yet)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from monitoring.models import PushDevice
from monitoring.services import audit_record

DEVICES_PER_USER = 20  # phones and tablets a person registers; every alert pushes to each


class TooManyDevices(Exception):
    """A user already has ``DEVICES_PER_USER`` devices and asked to register another."""

    def __init__(self) -> None:
        super().__init__(
            f"at most {DEVICES_PER_USER} devices per user: unregister one first "
            "(DELETE /api/v1/devices/<device_id>)"
        )


@transaction.atomic
def push_device_register(*, user, device_id: str, platform: str, token: str) -> PushDevice:
    """Store (or replace) the push token of ``user``'s device ``device_id``; audited. A new
    device past ``DEVICES_PER_USER`` raises ``TooManyDevices`` (a table that only grows).
    Other users' devices holding the same token are deactivated (a phone handed on)."""
    # The user's row locked: two registrations at once cannot both take the last place.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    mine = PushDevice.objects.filter(user=user)
    if not mine.filter(device_id=device_id).exists() and mine.count() >= DEVICES_PER_USER:
        raise TooManyDevices
    _release_token(user=user, platform=platform, token=token)
    device, created = PushDevice.objects.update_or_create(
        user=user,
        device_id=device_id,
        defaults={"platform": platform, "token": token, "active": True},
    )
    audit_record(
        actor=user,
        action="push_device.register" if created else "push_device.update",
        obj=device,
        before=None,
        after={"device_id": device_id, "platform": platform},  # never the token itself
    )
    return device


def _release_token(*, user, platform: str, token: str) -> None:
    """Deactivate, audited, other users' devices with this (platform, token): the phone now
    belongs to ``user``, and a shared phone must not keep showing the previous user's alerts."""
    held = PushDevice.objects.select_for_update().filter(
        platform=platform, token=token, active=True
    )
    for device in held.exclude(user=user):
        device.active = False
        device.save(update_fields=["active", "updated_at"])
        audit_record(
            actor=user,
            action="push_device.released",
            obj=device,
            before={"user": device.user_id, "device_id": device.device_id, "active": True},
            after={"active": False},  # never the token itself
        )


@transaction.atomic
def push_device_unregister(*, user, device_id: str) -> bool:
    """Forget ``user``'s device; return False when there is none."""
    device = PushDevice.objects.filter(user=user, device_id=device_id).first()
    if device is None:
        return False
    audit_record(
        actor=user,
        action="push_device.unregister",
        obj=device,
        before={"device_id": device_id, "platform": device.platform},
        after=None,
    )
    device.delete()
    return True
