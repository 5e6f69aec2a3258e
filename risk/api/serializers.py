"""Serializers of risk limits, risk events and trading-state changes."""

from __future__ import annotations

from rest_framework import serializers

from risk.choices import LimitAction, RiskSeverity
from risk.models import RiskEvent, RiskLimit
from rrr_site.api.pagination import KeysetQuery


class RiskLimitSerializer(serializers.ModelSerializer):
    """A limit (fractions as fractions: 0.20 = 20 %); admins change value/action/enabled/params."""

    account_name = serializers.CharField(source="account.name", read_only=True, default=None)

    class Meta:
        model = RiskLimit
        fields = [
            "id", "scope", "account", "account_name", "scope_value", "kind", "value", "action",
            "enabled", "params", "description", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "scope", "account", "scope_value", "kind", "updated_at"]
        extra_kwargs = {"value": {"min_value": 0}}


class RiskLimitUpdateSerializer(serializers.Serializer):
    """The editable fields of a limit (all optional: PATCH)."""

    value = serializers.DecimalField(max_digits=28, decimal_places=10, min_value=0, required=False)
    action = serializers.ChoiceField(choices=LimitAction.choices, required=False)
    enabled = serializers.BooleanField(required=False)
    params = serializers.DictField(required=False)
    description = serializers.CharField(max_length=200, allow_blank=True, required=False)


class LimitQuery(serializers.Serializer):
    """Narrow to one account's limits (its own and the global ones)."""

    account = serializers.IntegerField(min_value=1, required=False)


class RiskEventSerializer(serializers.ModelSerializer):
    """A rejection, reduction or breach."""

    account_name = serializers.CharField(source="account.name", read_only=True, default=None)

    class Meta:
        model = RiskEvent
        fields = [
            "id", "ts", "account", "account_name", "kind", "severity", "message", "context",
            "acknowledged", "acknowledged_at",
        ]  # fmt: skip
        read_only_fields = fields


class RiskEventQuery(KeysetQuery):
    """Filters of the risk events."""

    account = serializers.IntegerField(min_value=1, required=False)
    kind = serializers.CharField(max_length=32, required=False)
    severity = serializers.ChoiceField(choices=RiskSeverity.choices, required=False)
    acknowledged = serializers.BooleanField(required=False, allow_null=True, default=None)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class ReportQuery(serializers.Serializer):
    """The account to report on."""

    account = serializers.IntegerField(min_value=1)


class StateChangeSerializer(serializers.Serializer):
    """Why the trading state changes (kept in the audit log)."""

    reason = serializers.CharField(max_length=200, required=False, default="")


class TradingStateSerializer(serializers.Serializer):
    """An account's trading state after the change."""

    account = serializers.IntegerField()
    state = serializers.ChoiceField(choices=["active", "reducing", "halted"])
    reason = serializers.CharField(allow_blank=True)
    changed_at = serializers.DateTimeField()
    cancelled_orders = serializers.IntegerField(help_text="Working orders cancelled (halt)")
