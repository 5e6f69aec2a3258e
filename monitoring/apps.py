from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Health, metrics, structured logs, alerts and the audit log."""

    name = "monitoring"
    verbose_name = "Monitoring"
