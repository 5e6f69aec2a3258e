"""Reads: how the alternative data sources are doing, for ``/health/ready``.

Each source that has ever delivered is judged by the age of its newest data; one that never
has is not listed (nothing to judge). Stale sources make readiness ``degraded``, never
``unavailable``: trading does not depend on them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Max

from marketdata.choices import SignalStatus
from marketdata.engine.events import TIMEFRAME_SECONDS
from marketdata.models import DataQualityEvent, SentimentReading
from marketdata.models_sources import OnchainMetric, TradingViewHook, TradingViewSignal

SENTIMENT_STALE = timedelta(hours=2)


def alt_source_states(now: datetime) -> list[tuple[str, str, str, float | None]]:
    """Return (name, status, detail, age in seconds) for TradingView, sentiment and on-chain."""
    return [*_tradingview(now), *_sentiment(now), *_onchain(now)]


def _tradingview(now: datetime) -> list[tuple[str, str, str, float | None]]:
    if not TradingViewHook.objects.filter(active=True).exists():
        return []
    last = TradingViewSignal.objects.aggregate(last=Max("received_at"))["last"]
    waiting = TradingViewSignal.objects.filter(
        status=SignalStatus.PENDING, received_at__lt=now - timedelta(seconds=30)
    ).count()
    expired = TradingViewSignal.objects.filter(
        status=SignalStatus.EXPIRED, delivered_at__gte=now - timedelta(days=1)
    ).count()
    # Signals waiting for more than a few control polls: no engine is picking them up.
    status = "stale" if waiting else "ok"
    detail = f"{waiting} signals waiting for an engine, {expired} expired in 24 h, last alert"
    age = None if last is None else max((now - last).total_seconds(), 0.0)
    return [("tradingview", status, detail, age)]


def _sentiment(now: datetime) -> list[tuple[str, str, str, float | None]]:
    rows = SentimentReading.objects.values("source").annotate(last=Max("ts")).order_by("source")
    quarantined = DataQualityEvent.objects.filter(
        rule="sentiment_answer", ts__gte=now - timedelta(days=1)
    ).count()
    states = []
    for row in rows:
        age = max((now - row["last"]).total_seconds(), 0.0)
        status = "ok" if age <= SENTIMENT_STALE.total_seconds() else "stale"
        detail = f"last reading ({quarantined} answers quarantined in 24 h)"
        states.append((f"sentiment:{row['source']}", status, detail, age))
    return states


def _onchain(now: datetime) -> list[tuple[str, str, str, float | None]]:
    rows = (
        OnchainMetric.objects.values("chain", "timeframe")
        .annotate(last=Max("ts"))
        .order_by("chain", "timeframe")
    )
    states = []
    for row in rows:
        length = TIMEFRAME_SECONDS.get(row["timeframe"], 3600)
        ended = row["last"] + timedelta(seconds=length)
        age = max((now - ended).total_seconds(), 0.0)
        # The next interval is due one length after the last one ended (plus an hour's slack).
        status = "ok" if age <= length + 3600 else "stale"
        name = f"onchain:{row['chain']}:{row['timeframe']}"
        states.append((name, status, "last finished interval ended", age))
    return states
