"""Sentiment against a local chat-completions server and a local RSS feed; readings stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest

from marketdata.adapters.base import FeedAuthError
from marketdata.adapters.news_rss import fetch_headlines
from marketdata.adapters.sentiment_llm import LLMSentimentProvider
from marketdata.engine.sentiment import Headline, SentimentAnswerInvalid
from marketdata.models import DataQualityEvent, SentimentReading
from marketdata.sentiment import sentiment_round
from tests.factories import SymbolFactory
from tests.fakes.chat_completions import FakeChatCompletions, FakeNewsFeed, answer

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
HEADS = [
    Headline("BTC-USD", NOW - timedelta(minutes=5), "Bitcoin surges to record high"),
    Headline("BTC-USD", NOW - timedelta(minutes=7), "BTC ETF inflows hit a new peak"),
]


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.t += seconds


def provider(server, clock=None, key="test-key", **kw) -> LLMSentimentProvider:
    clock = clock or FakeClock()
    return LLMSentimentProvider(
        url=server.url, api_key=key, model="sonar", clock=clock, sleep=clock.sleep, **kw
    )


async def test_llm_provider_scores_caches_and_spaces_requests() -> None:
    async with FakeChatCompletions() as server:
        clock = FakeClock()
        llm = provider(server, clock, min_interval=2.0)
        server.answers.extend([answer(0.7, 0.9, 2, 0), answer(-0.4, 0.6, 0, 1)])
        first = await llm.score("BTC-USD", HEADS, NOW)
        again = await llm.score("BTC-USD", HEADS, NOW + timedelta(minutes=1))
        other = await llm.score("BTC-USD", HEADS[:1], NOW)
        await llm.close()
    assert (first.score, first.confidence, first.label, first.source) == (
        0.7,
        0.9,
        "bullish",
        "llm:sonar",
    )
    assert again.score == 0.7 and again.ts == NOW + timedelta(minutes=1)  # from the cache
    assert other.score == -0.4
    assert len(server.bodies) == 2 and llm.cache_hits == 1
    assert clock.slept == [2.0]  # the second request waited for the spacing
    sent = server.bodies[0]
    assert sent["model"] == "sonar" and sent["response_format"]["type"] == "json_schema"
    assert "Bitcoin surges to record high" in sent["messages"][1]["content"]


async def test_llm_provider_retries_429_and_refuses_a_bad_key() -> None:
    async with FakeChatCompletions() as server:
        clock = FakeClock()
        llm = provider(server, clock, min_interval=0.0)
        server.answers.extend([429, 503, answer(0.1, 0.5, 1, 0)])
        reading = await llm.score("BTC-USD", HEADS, NOW)
        await llm.close()
        assert reading.score == 0.1 and llm.requests == 3
        assert 0.01 in clock.slept  # Retry-After honoured
        bad = provider(server, key="wrong")
        with pytest.raises(FeedAuthError):
            await bad.score("BTC-USD", HEADS, NOW)
        await bad.close()


async def test_llm_out_of_range_answer_is_not_cached() -> None:
    async with FakeChatCompletions() as server:
        llm = provider(server, min_interval=0.0)
        server.answers.extend([answer(3.0, 0.5, 1, 0), answer(0.2, 0.5, 1, 0)])
        with pytest.raises(SentimentAnswerInvalid):
            await llm.score("BTC-USD", HEADS, NOW)
        assert (await llm.score("BTC-USD", HEADS, NOW)).score == 0.2
        await llm.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_round_from_rss_stores_readings_and_quarantines_bad_answers() -> None:
    from asgiref.sync import sync_to_async

    await sync_to_async(
        lambda: [SymbolFactory(name=n) for n in ("BTC-USD", "ETH-USD", "SOL-USD")]
    )()
    async with FakeNewsFeed() as news, FakeChatCompletions() as server:
        news.items = [
            (format_datetime(NOW - timedelta(minutes=3)), "Bitcoin rallies past $70k"),
            (format_datetime(NOW - timedelta(minutes=4)), "Ethereum upgrade slips again"),
            (format_datetime(NOW + timedelta(hours=1)), "Solana headline from the future"),
            ("not a date", "BTC undated headline is skipped"),
        ]
        async with aiohttp.ClientSession() as session:
            heads = await fetch_headlines(
                session, [f"{news.url}/rss"], ["BTC-USD", "ETH-USD", "SOL-USD"]
            )
        assert sorted(h.symbol for h in heads) == ["BTC-USD", "ETH-USD", "SOL-USD"]
        llm = provider(server, min_interval=0.0)
        server.answers.extend([answer(0.5, 0.7, 1, 0), '{"score": -7}'])
        stats = await sentiment_round(
            provider=llm, headlines=heads, symbols=["BTC-USD", "ETH-USD", "SOL-USD"], now=NOW
        )
        await llm.close()
    assert (stats.stored, stats.quarantined, stats.no_headlines) == (1, 1, 1)
    rows = await sync_to_async(
        lambda: list(
            SentimentReading.objects.values_list(
                "symbol__name", "source", "score", "label", "sources_count"
            )
        )
    )()
    assert rows == [("BTC-USD", "llm:sonar", 0.5, "bullish", 1)]
    bad = await sync_to_async(lambda: DataQualityEvent.objects.get(rule="sentiment_answer"))()
    assert bad.verdict == "quarantine" and "score" in bad.reason
