"""Enumerations for risk (limit kinds are shared with ``risk.engine``)."""

from django.db import models


class LimitScope(models.TextChoices):
    """What a limit applies to."""

    GLOBAL = "global"
    ACCOUNT = "account"
    SYMBOL = "symbol"
    STRATEGY = "strategy"


class LimitKind(models.TextChoices):
    """Pre-trade and monitoring limits."""

    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_POSITION_PCT = "max_position_pct"
    MAX_GROSS_EXPOSURE_PCT = "max_gross_exposure_pct"
    MAX_NET_EXPOSURE_PCT = "max_net_exposure_pct"
    MAX_OPEN_ORDERS = "max_open_orders"
    MAX_ORDER_RATE = "max_order_rate"
    PRICE_BAND_BPS = "price_band_bps"
    MAX_DAILY_LOSS_PCT = "max_daily_loss_pct"
    MAX_DRAWDOWN_PCT = "max_drawdown_pct"
    MAX_CORRELATION = "max_correlation"


class LimitAction(models.TextChoices):
    """What happens when a limit would be breached."""

    REJECT = "reject"
    REDUCE = "reduce"
    HALT = "halt"


class RiskSeverity(models.TextChoices):
    """Severity of a risk event."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class TradingStateChoice(models.TextChoices):
    """Per-account trading state."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"
