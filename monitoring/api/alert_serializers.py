"""Serializers of the alert and push-device endpoints."""

from __future__ import annotations

import re

from rest_framework import serializers

from monitoring.choices import AlertState
from monitoring.models import Alert, PushDevice


class AlertSerializer(serializers.ModelSerializer):
    """An alert with its counts and who acknowledged or resolved it."""

    rule = serializers.CharField(source="rule.name")

    class Meta:
        model = Alert
        fields = [
            "id", "rule", "source", "kind", "severity", "account", "symbol", "message",
            "context", "state", "occurrences", "deduplicated", "first_seen", "last_seen",
            "last_sent_at", "escalated_at", "acknowledged_at", "acknowledged_by",
            "resolved_at", "resolved_by",
        ]  # fmt: skip
        read_only_fields = fields


class AlertQuery(serializers.Serializer):
    """Filters of the alert list."""

    state = serializers.ChoiceField(choices=AlertState.choices, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)


class DeviceSerializer(serializers.ModelSerializer):
    """A device registered for push alerts (the token is write-only)."""

    token = serializers.CharField(max_length=512, write_only=True, trim_whitespace=True)
    device_id = serializers.RegexField(r"^[A-Za-z0-9._:-]{1,128}$")

    class Meta:
        model = PushDevice
        fields = ["device_id", "platform", "token", "active", "created_at", "updated_at"]
        read_only_fields = ["active", "created_at", "updated_at"]
        validators = []  # (user, device_id) is upserted, never refused as a duplicate

    def validate(self, attrs: dict) -> dict:
        """Refuse a token that is not the platform's kind (it goes into an APNs URL path)."""
        pattern = TOKEN_PATTERNS.get(attrs.get("platform", ""))
        if pattern is not None and not pattern.fullmatch(attrs.get("token", "")):
            raise serializers.ValidationError({"token": [TOKEN_HELP[attrs["platform"]]]})
        return attrs


# APNs device tokens are hex (32 bytes today, up to 100); FCM registration tokens are URL-safe.
TOKEN_PATTERNS = {
    "ios": re.compile(r"[0-9a-fA-F]{32,200}"),
    "android": re.compile(r"[A-Za-z0-9_:\-]{32,512}"),
}
TOKEN_HELP = {
    "ios": "an APNs device token is 32 to 200 hexadecimal digits",
    "android": "an FCM registration token is 32 to 512 of A-Z a-z 0-9 _ : -",
}
