"""Enumerations for monitoring."""

from django.db import models


class Severity(models.TextChoices):
    """Severity of system events and alerts."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class AlertChannel(models.TextChoices):
    """Where an alert rule routes."""

    LOG = "log"
    EMAIL = "email"
    SLACK = "slack"
    WEBHOOK = "webhook"
    TELEGRAM = "telegram"
    SMS = "sms"
    PUSH = "push", "push (iOS and Android phones of the users named in the target)"


class AlertState(models.TextChoices):
    """Where an alert is in its life: open until someone acknowledges or resolves it."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class DeliveryStatus(models.TextChoices):
    """Outcome of sending an alert to one channel."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"
