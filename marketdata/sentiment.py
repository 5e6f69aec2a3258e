"""Sentiment collection: score each symbol's recent headlines and store ``SentimentReading``s.

A provider's unusable answer (malformed, out of range) is quarantined as a ``DataQualityEvent``
(rule ``sentiment_answer``) and counted; it never becomes a reading.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from marketdata.engine.sentiment import (
    Headline,
    SentimentAnswerInvalid,
    SentimentProvider,
    SentimentScore,
)
from marketdata.models import DataQualityEvent, SentimentReading, Symbol

logger = logging.getLogger(__name__)


@dataclass
class SentimentRoundStats:
    """What one collection round did."""

    stored: int = 0
    quarantined: int = 0
    no_headlines: int = 0
    reasons: Counter = field(default_factory=Counter)


@transaction.atomic
def sentiment_reading_store(*, reading: SentimentScore) -> SentimentReading:
    """Store (or replace) the provider's reading for the symbol at its time."""
    symbol = Symbol.objects.get(name=reading.symbol)
    row, _ = SentimentReading.objects.update_or_create(
        source=reading.source[:64],
        symbol=symbol,
        ts=reading.ts,
        defaults={
            "label": reading.label,
            "score": reading.score,
            "confidence": reading.confidence,
            "bullish_count": reading.bullish,
            "bearish_count": reading.bearish,
            "sources_count": reading.headlines,
        },
    )
    return row


def sentiment_answer_quarantine(
    *, symbol: str, source: str, error: SentimentAnswerInvalid, now: datetime
) -> None:
    """Keep an unusable provider answer for diagnosis instead of storing a reading."""
    DataQualityEvent.objects.create(
        ts=timezone.now(),
        event_ts=now,
        symbol=Symbol.objects.filter(name=symbol).first(),
        source=source[:32],
        rule="sentiment_answer",
        verdict="quarantine",
        reason=error.reason[:2000],
        payload={"raw": error.raw},
    )


async def sentiment_round(
    *,
    provider: SentimentProvider,
    headlines: Sequence[Headline],
    symbols: Sequence[str],
    now: datetime,
) -> SentimentRoundStats:
    """Score every symbol's headlines published up to ``now`` and store the readings."""
    from monitoring.metrics import ALT_DATA_EVENTS

    stats = SentimentRoundStats()
    for symbol in symbols:
        mine = [h for h in headlines if h.symbol == symbol and h.ts <= now]
        if not mine:
            stats.no_headlines += 1
            continue
        try:
            reading = await provider.score(symbol, mine, now)
        except SentimentAnswerInvalid as exc:
            stats.quarantined += 1
            ALT_DATA_EVENTS.labels("sentiment", "quarantined").inc()
            stats.reasons[exc.reason] += 1
            logger.warning(
                "sentiment answer quarantined",
                extra={"symbol": symbol, "provider": provider.name, "reason": exc.reason},
            )
            await sync_to_async(sentiment_answer_quarantine)(
                symbol=symbol, source=provider.name, error=exc, now=now
            )
            continue
        await sync_to_async(sentiment_reading_store)(reading=reading)
        stats.stored += 1
        ALT_DATA_EVENTS.labels("sentiment", "stored").inc()
    return stats
