from django.apps import AppConfig


class TradingConfig(AppConfig):
    """Django app config for trading."""

    name = "trading"
    verbose_name = "Trading"
