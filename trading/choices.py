"""Enumerations for trading (values shared with ``trading.engine``; a test keeps them equal)."""

from django.db import models


class AccountMode(models.TextChoices):
    """Paper accounts fill on the simulated venue; live accounts reach an exchange."""

    PAPER = "paper"
    LIVE = "live"


class Venue(models.TextChoices):
    """Where orders execute."""

    PAPER = "paper"
    BINANCE = "binance"
    COINBASE = "coinbase"
    KRAKEN = "kraken"


class OrderSide(models.TextChoices):
    """Order side."""

    BUY = "buy"
    SELL = "sell"


class OrderType(models.TextChoices):
    """Order types the OMS supports."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TAKE_PROFIT = "take_profit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(models.TextChoices):
    """How long an order stays working."""

    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    DAY = "day"


class OrderStatus(models.TextChoices):
    """Order lifecycle."""

    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


OPEN_ORDER_STATUSES = (OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


class Liquidity(models.TextChoices):
    """Whether a fill added or removed liquidity."""

    MAKER = "maker"
    TAKER = "taker"
