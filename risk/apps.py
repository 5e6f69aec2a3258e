from django.apps import AppConfig


class RiskConfig(AppConfig):
    """Django app config for risk."""

    name = "risk"
    verbose_name = "Risk"
