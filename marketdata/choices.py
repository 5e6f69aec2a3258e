"""Enumerations for market data, built from the engine's enums so there is one source of truth."""

from django.db import models

from marketdata.engine.events import Side as _Side
from marketdata.engine.events import Timeframe as _Timeframe

Timeframe = models.TextChoices("Timeframe", [(t.name, t.value) for t in _Timeframe])
TradeSide = models.TextChoices("TradeSide", [(s.name, s.value) for s in _Side])


class DataSource(models.TextChoices):
    """Where market data came from."""

    SIM = "sim"
    POLYGON = "polygon"
    COINBASE = "coinbase"
    BINANCE = "binance"
    KRAKEN = "kraken"
    CCXT_BINANCE = "ccxt:binance"
    CCXT_COINBASE = "ccxt:coinbase"
    CCXT_KRAKEN = "ccxt:kraken"
    CSV = "csv"
    TRADINGVIEW = "tradingview"


class JobStatus(models.TextChoices):
    """Lifecycle of a backfill job."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class QualityVerdict(models.TextChoices):
    """What the validator decided about an event."""

    FLAG = "flag"
    QUARANTINE = "quarantine"


class SentimentLabel(models.TextChoices):
    """Coarse sentiment label."""

    BEARISH = "bearish"
    NEUTRAL = "neutral"
    BULLISH = "bullish"


class SignalAction(models.TextChoices):
    """What a TradingView alert asks for ({{strategy.order.action}})."""

    BUY = "buy"
    SELL = "sell"


class SignalStatus(models.TextChoices):
    """Lifecycle of a stored TradingView signal."""

    PENDING = "pending"
    DELIVERED = "delivered"
    EXPIRED = "expired"


class OnchainChain(models.TextChoices):
    """Chains whose network metrics are collected."""

    ETH = "eth"
    BTC = "btc"
