"""Monitoring: system events, performance metrics, the audit log and alert rules."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from monitoring.choices import AlertChannel, Severity


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
    """Routes events matching a source and minimum severity to a channel."""

    name = models.CharField(max_length=100, unique=True)
    source = models.CharField(max_length=64, help_text="risk, marketdata, trading, system or *")
    min_severity = models.CharField(
        max_length=16, choices=Severity.choices, default=Severity.WARNING
    )
    channel = models.CharField(
        max_length=16, choices=AlertChannel.choices, default=AlertChannel.LOG
    )
    target = models.CharField(max_length=500, blank=True, help_text="Address, channel or URL")
    enabled = models.BooleanField(default=True)
    cooldown_seconds = models.PositiveIntegerField(default=300)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name
