"""Models for the alternative data sources: TradingView alert webhooks and on-chain metrics.

Sentiment readings live in ``SentimentReading`` (``marketdata.models``). Imported by
``marketdata.models`` so Django registers these with the app.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from marketdata.choices import OnchainChain, SignalAction, SignalStatus

QUANTITY_DIGITS = {"max_digits": 28, "decimal_places": 10}


class TradingViewHook(models.Model):
    """A per-account webhook secret: TradingView posts alerts to ``/hooks/tradingview/<token>``.

    The token is ``<key>.<secret>``; only the SHA-256 of the secret is stored, compared in
    constant time. The full token is shown once, when the hook is created.
    """

    name = models.CharField(max_length=64)
    account = models.ForeignKey(
        "trading.Account", on_delete=models.CASCADE, related_name="tradingview_hooks"
    )
    key = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    active = models.BooleanField(default=True)
    rate_per_minute = models.PositiveIntegerField(
        default=30, help_text="Alerts accepted per minute; more get HTTP 429"
    )
    max_signal_age_seconds = models.PositiveIntegerField(
        default=300, help_text="A signal the engine picks up later than this expires untraded"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["account", "name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="tvhook_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class TradingViewSignal(models.Model):
    """One TradingView alert, stored once per (hook, alert id), then delivered to the engine."""

    hook = models.ForeignKey(TradingViewHook, on_delete=models.CASCADE, related_name="signals")
    account = models.ForeignKey(
        "trading.Account", on_delete=models.CASCADE, related_name="tradingview_signals"
    )
    alert_id = models.CharField(max_length=64)
    symbol = models.ForeignKey(
        "marketdata.Symbol", on_delete=models.CASCADE, related_name="tradingview_signals"
    )
    ticker = models.CharField(max_length=32, help_text="As TradingView sent it")
    action = models.CharField(max_length=4, choices=SignalAction.choices)
    close = models.DecimalField(**QUANTITY_DIGITS)
    position_size = models.DecimalField(
        **QUANTITY_DIGITS, null=True, blank=True, help_text="Strategy position after the order"
    )
    comment = models.CharField(max_length=200, blank=True)
    alert_time = models.DateTimeField(null=True, blank=True, help_text="{{time}} of the alert")
    received_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=SignalStatus.choices, default=SignalStatus.PENDING
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField(default=dict)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["hook", "alert_id"], name="tvsignal_unique_alert"),
            models.CheckConstraint(condition=Q(close__gt=0), name="tvsignal_close_positive"),
        ]
        indexes = [models.Index(fields=["account", "status", "received_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.symbol_id} ({self.alert_id})"


class OnchainMetric(models.Model):
    """Network activity of one chain over one interval starting at ``ts`` (UTC).

    Volumes and fees are in the chain's native unit (ETH, BTC); they are observations, so floats.
    """

    chain = models.CharField(max_length=8, choices=OnchainChain.choices)
    timeframe = models.CharField(max_length=4)
    ts = models.DateTimeField()
    tx_count = models.PositiveIntegerField()
    volume = models.FloatField(help_text="Native units transferred")
    active_addresses = models.PositiveIntegerField()
    fees = models.FloatField(help_text="Native units paid in fees")
    large_transfers = models.PositiveIntegerField(help_text="Transfers at or above the threshold")
    large_volume = models.FloatField(default=0.0)
    exchange_inflow = models.FloatField(default=0.0, help_text="Into listed exchange addresses")
    exchange_outflow = models.FloatField(default=0.0, help_text="Out of listed exchange addresses")
    token_transfers = models.PositiveIntegerField(
        default=0, help_text="ERC-20 Transfer events of the configured tokens (eth)"
    )
    first_block = models.BigIntegerField()
    last_block = models.BigIntegerField()
    blocks = models.PositiveIntegerField()
    source = models.CharField(max_length=32)

    class Meta:
        ordering = ["chain", "timeframe", "ts"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "timeframe", "ts"], name="onchain_unique_key"),
            models.CheckConstraint(
                condition=Q(volume__gte=0, fees__gte=0), name="onchain_amounts_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.chain} {self.timeframe} {self.ts:%Y-%m-%d %H:%M}"
