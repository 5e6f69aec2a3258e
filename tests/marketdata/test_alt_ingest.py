"""``ingest --source sentiment|onchain:*`` against local news, chat-completions and node servers."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from marketdata.models import DataQualityEvent, OnchainMetric, SentimentReading
from tests.fakes.chains import FakeEthNode
from tests.fakes.chat_completions import FakeChatCompletions, FakeNewsFeed, answer
from tests.fakes.threaded import served

pytestmark = pytest.mark.django_db(transaction=True)


def ingest(*args: str) -> str:
    out = io.StringIO()
    call_command("ingest", *args, stdout=out)
    return out.getvalue()


def news() -> FakeNewsFeed:
    feed = FakeNewsFeed()
    now = timezone.now()
    feed.items = [
        (format_datetime(now - timedelta(minutes=10)), "Bitcoin surges as ETF inflows soar"),
        (format_datetime(now - timedelta(minutes=20)), "Ethereum plunges after exchange hack"),
        (format_datetime(now - timedelta(days=3)), "BTC crash (too old to count)"),
    ]
    return feed


def test_sentiment_with_the_lexicon_provider():
    with served(news()) as feed:
        out = ingest(
            "--source",
            "sentiment",
            "--symbols",
            "BTC-USD,ETH-USD",
            "--news-url",
            f"{feed.url}/rss",
            "--interval",
            "0.2",
            "--duration",
            "0.5",
        )
    assert "stored=" in out and "failed_rounds" not in out
    latest = {
        name: SentimentReading.objects.filter(symbol__name=name).latest("ts")
        for name in ("BTC-USD", "ETH-USD")
    }
    assert latest["BTC-USD"].label == "bullish" and latest["BTC-USD"].sources_count == 1
    assert latest["ETH-USD"].label == "bearish"
    assert {r.source for r in latest.values()} == {"lexicon:vader"}


def test_sentiment_with_an_llm_provider_quarantines_bad_answers(settings):
    server = FakeChatCompletions()
    server.answers.extend([answer(0.6, 0.8, 1, 0), '{"score": 9, "confidence": 1}'])
    with served(news()) as feed, served(server):
        settings.SENTIMENT_LLM_URL = server.url
        settings.SENTIMENT_LLM_API_KEY = "test-key"
        settings.SENTIMENT_LLM_MODEL = "sonar"
        out = ingest(
            "--source",
            "sentiment",
            "--provider",
            "llm",
            "--symbols",
            "BTC-USD,ETH-USD",
            "--news-url",
            f"{feed.url}/rss",
            "--interval",
            "5",
            "--duration",
            "0.5",
        )
    assert "quarantined=1" in out and "stored=1" in out
    assert SentimentReading.objects.get().source == "llm:sonar"
    assert DataQualityEvent.objects.filter(rule="sentiment_answer").count() == 1


def test_sentiment_refusals_and_a_dead_feed_stops_loudly(settings):
    settings.SENTIMENT_NEWS_URLS = []
    with pytest.raises(CommandError, match="--news-url"):
        ingest("--source", "sentiment", "--duration", "0.1")
    settings.SENTIMENT_LLM_API_KEY = ""
    with pytest.raises(CommandError, match="PERPLEXITY_API_KEY"):
        ingest("--source", "sentiment", "--provider", "llm", "--news-url", "http://127.0.0.1:9/x")
    with pytest.raises(CommandError, match="rounds failed in a row"):
        ingest(
            "--source",
            "sentiment",
            "--news-url",
            "http://127.0.0.1:9/rss",
            "--interval",
            "0.01",
            "--duration",
            "30",
        )


def test_onchain_follows_the_chain():
    start = (timezone.now() - timedelta(minutes=30)).replace(second=0, microsecond=0)
    with served(FakeEthNode(start.astimezone(UTC), tip=149)) as node:  # 12 s blocks: 30 min
        out = ingest(
            "--source",
            "onchain:eth",
            "--url",
            node.url,
            "--timeframe",
            "5m",
            "--lookback",
            "3600",
            "--interval",
            "0.2",
            "--duration",
            "0.5",
        )
    stored = OnchainMetric.objects.filter(chain="eth", timeframe="5m").count()
    assert stored >= 4 and f"stored={stored}" in out
    assert OnchainMetric.objects.filter(ts__lt=datetime(2000, 1, 1, tzinfo=UTC)).count() == 0
