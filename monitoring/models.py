"""Monitoring: system events, performance metrics, the audit log and alert rules."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from monitoring.choices import AlertChannel, AlertState, DeliveryStatus, Severity


class SystemEvent(models.Model):
    """Something the platform did or saw: heartbeats, starts/stops, feed faults, errors."""

    ts = models.DateTimeField(db_index=True)
    component = models.CharField(max_length=64)
    kind = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.INFO)
    message = models.TextField(blank=True)
    context = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-ts"]
        indexes = [models.Index(fields=["component", "kind", "-ts"])]

    def __str__(self) -> str:
        return f"{self.ts:%Y-%m-%d %H:%M:%S} {self.component}/{self.kind}"


class PerformanceMetric(models.Model):
    """A named measurement (latency, throughput, counts) sampled at a time."""

    ts = models.DateTimeField(db_index=True)
    name = models.CharField(max_length=128)
    value = models.FloatField()
    unit = models.CharField(max_length=16, blank=True)
    labels = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-ts"]
        indexes = [models.Index(fields=["name", "-ts"])]

    def __str__(self) -> str:
        return f"{self.name}={self.value}{self.unit}"


class AuditLog(models.Model):
    """Who changed what, with the values before and after. Append-only."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_entries",
    )
    actor_repr = models.CharField(max_length=150, help_text="Actor name kept even if the user goes")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_repr} {self.action} {self.object_repr}"


class AlertRule(models.Model):
    """Routes alert events matching source, kind, minimum severity, account and symbol to a
    channel; unacknowledged critical alerts escalate to a second channel after N minutes.

    ``target`` is the channel's address: e-mail addresses (comma-separated), a Slack webhook
    URL, a Telegram chat id, a phone number (+E.164), a webhook URL or, for push, the usernames
    whose registered phones (iOS and Android) get it; ``env:NAME`` reads it from
    the environment when sending. Keys (Telegram bot token, Twilio SID/token) come only from the
    environment.
    """

    name = models.CharField(max_length=100, unique=True)
    source = models.CharField(
        max_length=64, default="*", help_text="risk, marketdata, trading, system, jobs, ml or *"
    )
    kind = models.CharField(
        max_length=64, blank=True, help_text="Alert kind (e.g. max_drawdown_pct); blank: any"
    )
    min_severity = models.CharField(
        max_length=16, choices=Severity.choices, default=Severity.WARNING
    )
    account = models.CharField(max_length=64, blank=True, help_text="Account name; blank: any")
    symbol = models.CharField(max_length=32, blank=True, help_text="Symbol; blank: any")
    channel = models.CharField(
        max_length=16, choices=AlertChannel.choices, default=AlertChannel.LOG
    )
    target = models.CharField(max_length=500, blank=True, help_text="Address, channel or URL")
    enabled = models.BooleanField(default=True)
    cooldown_seconds = models.PositiveIntegerField(
        default=300, help_text="The same alert within this is counted, not resent"
    )
    max_per_hour = models.PositiveIntegerField(
        default=30,
        help_text="Deliveries of this rule per hour, beyond which none is sent; 0: unlimited",
    )
    escalate_after_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Unacknowledged critical alerts escalate after this"
    )
    escalation_channel = models.CharField(max_length=16, choices=AlertChannel.choices, blank=True)
    escalation_target = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Refuse a source no alert comes from, an address its channel cannot take, and half
        an escalation (a delay without a channel never escalates; a channel without one never
        fires)."""
        from django.core.exceptions import ValidationError

        from monitoring.channels.targets import SOURCES, target_problem

        errors: dict[str, str] = {}
        if self.source.strip() not in SOURCES:
            errors["source"] = f"one of {', '.join(SOURCES)}"
        if problem := target_problem(self.channel, self.target):
            errors["target"] = problem
        if self.escalate_after_minutes is not None and not self.escalation_channel:
            errors["escalation_channel"] = "escalating after a delay needs a channel"
        elif self.escalation_channel and self.escalate_after_minutes is None:
            errors["escalate_after_minutes"] = "an escalation channel needs a delay"
        elif self.escalation_channel and (
            problem := target_problem(self.escalation_channel, self.escalation_target)
        ):
            errors["escalation_target"] = problem
        if errors:
            raise ValidationError(errors)


class Alert(models.Model):
    """One ongoing alert of a rule: repeats within the cooldown are counted into it."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    fingerprint = models.CharField(max_length=64, db_index=True)
    source = models.CharField(max_length=64)
    kind = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    account = models.CharField(max_length=64, blank=True)
    symbol = models.CharField(max_length=32, blank=True)
    message = models.TextField()
    context = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.OPEN)
    occurrences = models.PositiveIntegerField(default=1)
    deduplicated = models.PositiveIntegerField(default=0, help_text="Repeats counted, not sent")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    last_sent_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-last_seen"]
        indexes = [models.Index(fields=["rule", "fingerprint", "state"])]
        constraints = [
            # One unresolved alert per rule and fingerprint: two processes raising the same new
            # alert at once cannot both open one (the second insert fails and counts instead).
            models.UniqueConstraint(
                fields=["rule", "fingerprint"],
                condition=~models.Q(state="resolved"),
                name="alert_one_unresolved_per_fingerprint",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} ({self.severity}) x{self.occurrences}"


class AlertDelivery(models.Model):
    """One attempt to tell people about an alert through one channel."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=16, choices=AlertChannel.choices)
    target = models.CharField(max_length=500, blank=True)
    escalation = models.BooleanField(default=False)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.channel} {self.status}"


class PushDevice(models.Model):
    """A phone that receives push alerts: one token per user and device."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_devices"
    )
    device_id = models.CharField(max_length=128)
    platform = models.CharField(max_length=16, choices=[("ios", "iOS"), ("android", "Android")])
    token = models.CharField(max_length=512)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "device_id"], name="pushdevice_user_device")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.device_id} ({self.platform})"


class TelegramConfirmation(models.Model):
    """A Telegram chat's ``/flatten`` waiting for its ``/confirm``, until ``expires_at``.

    A row, not the cache: without Redis the cache is each process's own memory, so a restarted
    bot (or the next ``telegrambot --once``) answered "Nothing to confirm".
    """

    chat_id = models.BigIntegerField(unique=True)
    account = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"chat {self.chat_id}: flatten {self.account} until {self.expires_at:%H:%M:%S}"
