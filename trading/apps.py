from django.apps import AppConfig


class TradingConfig(AppConfig):
    """Django app config for trading."""

    name = "trading"
    verbose_name = "Trading"

    def ready(self) -> None:
        """Point the user-strategy loader at ``settings.STRATEGY_PATHS``."""
        from django.conf import settings

        from trading.engine.strategy_paths import set_strategy_paths

        set_strategy_paths(list(getattr(settings, "STRATEGY_PATHS", [])))
