from django.apps import AppConfig


class MarketdataConfig(AppConfig):
    """Django app config for marketdata."""

    name = "marketdata"
    verbose_name = "Market data"
