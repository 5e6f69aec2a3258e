"""Market data: symbols, bars per timeframe, trades, quotes, books, sentiment, backfills, quality.

Market-data prices and sizes are floats (they are observations, not money); every timestamp is
timezone-aware UTC.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from marketdata.choices import (
    DataSource,
    JobStatus,
    QualityVerdict,
    SentimentLabel,
    Timeframe,
    TradeSide,
)

PRICE_DIGITS = {"max_digits": 24, "decimal_places": 10}


class Symbol(models.Model):
    """A tradable pair such as ``BTC-USD`` with its venue names and trading increments."""

    name = models.CharField(max_length=32, unique=True, help_text="Canonical name, e.g. BTC-USD")
    base = models.CharField(max_length=16)
    quote = models.CharField(max_length=16)
    venue_symbols = models.JSONField(
        default=dict, blank=True, help_text='Venue names, e.g. {"binance": "BTCUSDT"}'
    )
    tick_size = models.DecimalField(**PRICE_DIGITS, default="0.01")
    lot_size = models.DecimalField(**PRICE_DIGITS, default="0.00000001")
    min_notional = models.DecimalField(**PRICE_DIGITS, default="1")
    reference_price = models.FloatField(default=0.0, help_text="Base price of the simulator")
    reference_volume = models.FloatField(default=0.0, help_text="Typical daily volume")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(tick_size__gt=0), name="symbol_tick_size_positive"),
            models.CheckConstraint(condition=Q(lot_size__gt=0), name="symbol_lot_size_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Bar(models.Model):
    """An OHLCV bar; ``ts`` is the UTC start of its window. One row per symbol, timeframe, ts."""

    # The unique key (symbol, timeframe, ts) already indexes symbol first.
    symbol = models.ForeignKey(
        Symbol, on_delete=models.CASCADE, related_name="bars", db_index=False
    )
    timeframe = models.CharField(max_length=4, choices=Timeframe.choices)
    ts = models.DateTimeField()
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField(default=0.0)
    vwap = models.FloatField(null=True, blank=True)
    trade_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["symbol", "timeframe", "ts"]
        constraints = [
            models.UniqueConstraint(fields=["symbol", "timeframe", "ts"], name="bar_unique_key"),
            models.CheckConstraint(
                condition=Q(high__gte=F("open")) & Q(high__gte=F("close")) & Q(high__gte=F("low")),
                name="bar_high_is_max",
            ),
            models.CheckConstraint(
                condition=Q(low__lte=F("open")) & Q(low__lte=F("close")) & Q(low__gt=0),
                name="bar_low_is_min_positive",
            ),
            models.CheckConstraint(condition=Q(volume__gte=0), name="bar_volume_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol_id} {self.timeframe} {self.ts:%Y-%m-%d %H:%M:%S}"


class TradeTick(models.Model):
    """One trade print. Deduplicated by venue and trade id (per symbol: venues number per pair)."""

    # No per-row FK check on the hottest insert path (the store resolves symbols itself; ORM
    # deletes still cascade), and (symbol, ts) already indexes symbol first.
    symbol = models.ForeignKey(
        Symbol,
        on_delete=models.CASCADE,
        related_name="trades",
        db_constraint=False,
        db_index=False,
    )
    venue = models.CharField(max_length=32)
    trade_id = models.CharField(max_length=64)
    ts = models.DateTimeField()
    price = models.FloatField()
    size = models.FloatField()
    side = models.CharField(max_length=4, choices=TradeSide.choices, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["venue", "symbol", "trade_id"], name="tradetick_dedup_key"
            ),
            models.CheckConstraint(condition=Q(price__gt=0), name="tradetick_price_positive"),
            models.CheckConstraint(condition=Q(size__gt=0), name="tradetick_size_positive"),
        ]
        indexes = [models.Index(fields=["symbol", "ts"], name="tradetick_symbol_ts")]

    def __str__(self) -> str:
        return f"{self.symbol_id} {self.price}x{self.size} @{self.ts}"


class Quote(models.Model):
    """Top of book at a moment."""

    symbol = models.ForeignKey(
        Symbol, on_delete=models.CASCADE, related_name="quotes", db_index=False
    )
    venue = models.CharField(max_length=32)
    ts = models.DateTimeField()
    bid = models.FloatField()
    bid_size = models.FloatField()
    ask = models.FloatField()
    ask_size = models.FloatField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(bid__gt=0, ask__gt=0), name="quote_prices_positive"),
            models.CheckConstraint(
                condition=Q(bid_size__gte=0, ask_size__gte=0), name="quote_sizes_non_negative"
            ),
            # One quote per venue and instant keeps replays idempotent (the latest wins).
            models.UniqueConstraint(fields=["symbol", "venue", "ts"], name="quote_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol_id} {self.bid}/{self.ask} @{self.ts}"


class BookSnapshot(models.Model):
    """Order book levels at a moment: ``bids``/``asks`` are [[price, size], ...], best first."""

    symbol = models.ForeignKey(
        Symbol, on_delete=models.CASCADE, related_name="books", db_index=False
    )
    venue = models.CharField(max_length=32)
    ts = models.DateTimeField()
    sequence = models.BigIntegerField(null=True, blank=True)
    depth = models.PositiveSmallIntegerField(default=10)
    bids = models.JSONField(default=list)
    asks = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["symbol", "venue", "ts"], name="book_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol_id} book @{self.ts}"


class SentimentReading(models.Model):
    """An aggregated sentiment observation for a symbol (the whole market when null)."""

    symbol = models.ForeignKey(
        Symbol, null=True, blank=True, on_delete=models.CASCADE, related_name="sentiment"
    )
    ts = models.DateTimeField()
    source = models.CharField(max_length=64)
    label = models.CharField(
        max_length=8, choices=SentimentLabel.choices, default=SentimentLabel.NEUTRAL
    )
    score = models.FloatField(help_text="-1 (bearish) .. 1 (bullish)")
    confidence = models.FloatField(help_text="0 .. 1")
    bullish_count = models.PositiveIntegerField(default=0)
    bearish_count = models.PositiveIntegerField(default=0)
    sources_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(score__gte=-1, score__lte=1), name="sentiment_score_range"
            ),
            models.CheckConstraint(
                condition=Q(confidence__gte=0, confidence__lte=1), name="sentiment_confidence_range"
            ),
            models.UniqueConstraint(
                fields=["source", "symbol", "ts"], name="sentiment_unique_reading"
            ),
        ]
        indexes = [models.Index(fields=["symbol", "ts"], name="sentiment_symbol_ts")]

    def __str__(self) -> str:
        return f"{self.source} {self.symbol_id} {self.score:+.2f}"


class BackfillJob(models.Model):
    """A resumable historical download: ``cursor`` is the first timestamp not yet stored."""

    source = models.CharField(max_length=32, choices=DataSource.choices)
    symbol = models.ForeignKey(Symbol, on_delete=models.CASCADE, related_name="backfills")
    timeframe = models.CharField(max_length=4, choices=Timeframe.choices)
    start = models.DateTimeField()
    end = models.DateTimeField()
    cursor = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    rows_written = models.PositiveBigIntegerField(default=0)
    pages = models.PositiveIntegerField(default=0)
    gaps = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    claimed_by = models.CharField(max_length=128, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="backfill_range_valid"),
        ]
        indexes = [models.Index(fields=["source", "symbol", "timeframe", "status"])]

    def __str__(self) -> str:
        span = f"{self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"
        return f"{self.source} {self.symbol_id} {self.timeframe} {span}"


class DataQualityEvent(models.Model):
    """A market-data event the validator flagged or quarantined, with the raw payload kept."""

    ts = models.DateTimeField(db_index=True, help_text="When it was detected")
    event_ts = models.DateTimeField(null=True, blank=True, help_text="Timestamp of the data")
    symbol = models.ForeignKey(
        Symbol, null=True, blank=True, on_delete=models.SET_NULL, related_name="quality_events"
    )
    source = models.CharField(max_length=32)
    rule = models.CharField(max_length=32)
    verdict = models.CharField(max_length=16, choices=QualityVerdict.choices)
    reason = models.TextField()
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-ts"]
        indexes = [models.Index(fields=["rule", "verdict", "-ts"])]

    def __str__(self) -> str:
        return f"{self.verdict} {self.rule}: {self.reason[:60]}"
