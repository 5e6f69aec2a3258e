"""/health/ready lists the alternative sources: ok when fresh, stale (degraded) when not."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marketdata.models import OnchainMetric, SentimentReading, TradingViewSignal
from marketdata.tradingview import tradingview_hook_create
from monitoring.selectors import readiness_components, readiness_status
from tests.factories import AccountFactory, SymbolFactory

pytestmark = pytest.mark.django_db


def test_alt_sources_in_readiness():
    now = timezone.now()
    btc = SymbolFactory(name="BTC-USD")
    assert not [c for c in readiness_components(now=now) if c.name.startswith("tradingview")]
    hook, _ = tradingview_hook_create(account=AccountFactory(name="tv"), name="h")
    TradingViewSignal.objects.create(
        hook=hook,
        account=hook.account,
        alert_id="a",
        symbol=btc,
        ticker="BTCUSD",
        action="buy",
        close=1,
        received_at=now - timedelta(minutes=2),
    )
    SentimentReading.objects.create(
        symbol=btc, ts=now - timedelta(minutes=5), source="lexicon", score=0.1, confidence=0.5
    )
    OnchainMetric.objects.create(
        chain="btc",
        timeframe="1h",
        ts=now - timedelta(hours=5),
        tx_count=1,
        volume=1,
        active_addresses=1,
        fees=0,
        large_transfers=0,
        first_block=1,
        last_block=1,
        blocks=1,
        source="t",
    )
    states = {c.name: c for c in readiness_components(now=now)}
    assert states["tradingview"].status == "stale"  # a signal waits for an engine
    assert "1 signals waiting" in states["tradingview"].detail
    assert states["sentiment:lexicon"].status == "ok"
    assert states["sentiment:lexicon"].age_seconds == pytest.approx(300, abs=1)
    assert states["onchain:btc:1h"].status == "stale"
    assert not any(states[n].required for n in ("tradingview", "onchain:btc:1h"))
    assert readiness_status(list(states.values())) == "degraded"
    TradingViewSignal.objects.update(status="delivered")
    states = {c.name: c for c in readiness_components(now=now)}
    assert states["tradingview"].status == "ok"
