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
