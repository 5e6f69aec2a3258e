from django.apps import AppConfig


class BacktestingConfig(AppConfig):
    """Django app config for backtesting."""

    name = "backtesting"
    verbose_name = "Backtesting"
