"""Headline sentiment: answer validation and the lexicon provider (no database, no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from marketdata.engine.sentiment import (
    Headline,
    LexiconSentimentProvider,
    SentimentAnswerInvalid,
    llm_answer_parse,
    llm_request_body,
)

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)


def completion(content) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


def parse(content, headlines: int = 4):
    return llm_answer_parse(
        completion(content), symbol="BTC-USD", now=NOW, source="llm:test", headlines=headlines
    )


def test_valid_answer_becomes_a_reading() -> None:
    reading = parse('{"score": 0.6, "confidence": 0.8, "bullish": 3, "bearish": 1}')
    assert (reading.score, reading.confidence, reading.bullish, reading.bearish) == (
        0.6,
        0.8,
        3,
        1,
    )
    assert reading.label == "bullish" and reading.headlines == 4
    fenced = parse('```json\n{"score": -0.2, "confidence": 0.5, "bullish": 0, "bearish": 2}\n```')
    assert fenced.label == "bearish"


@pytest.mark.parametrize(
    "content",
    [
        '{"score": 1.5, "confidence": 0.5, "bullish": 1, "bearish": 0}',
        '{"score": -0.5, "confidence": 2, "bullish": 1, "bearish": 0}',
        '{"score": NaN, "confidence": 0.5, "bullish": 1, "bearish": 0}',
        '{"score": "0.5", "confidence": 0.5, "bullish": 1, "bearish": 0}',
        '{"score": 0.5, "confidence": 0.5, "bullish": 3, "bearish": 3}',
        '{"score": 0.5, "confidence": 0.5, "bullish": -1, "bearish": 0}',
        '{"score": 0.5, "confidence": 0.5, "bullish": true, "bearish": 0}',
        '{"score": 0.5, "confidence": 0.5, "bullish": 1, "bearish": 0, "why": "x"}',
        '{"score": 0.5}',
        "The market looks bullish.",
        "[0.5, 0.5]",
        None,
    ],
)
def test_malformed_or_out_of_range_answers_are_refused(content) -> None:
    with pytest.raises(SentimentAnswerInvalid):
        parse(content)


@pytest.mark.parametrize("body", [{}, {"choices": []}, {"choices": [{"message": {}}]}, "x"])
def test_answers_without_content_are_refused(body) -> None:
    with pytest.raises(SentimentAnswerInvalid):
        llm_answer_parse(body, symbol="BTC-USD", now=NOW, source="llm:test", headlines=1)


def test_request_is_fixed_prompt_with_schema_and_deterministic() -> None:
    heads = [Headline("BTC-USD", NOW - timedelta(hours=1), "Bitcoin ETF sees inflows")]
    body = llm_request_body("sonar", "BTC-USD", heads)
    assert body["temperature"] == 0
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["score"] == {"type": "number", "minimum": -1, "maximum": 1}
    assert "Bitcoin ETF sees inflows" in body["messages"][1]["content"]
    assert json.dumps(body) == json.dumps(llm_request_body("sonar", "BTC-USD", heads))


async def test_lexicon_provider_reads_market_headlines_and_never_looks_ahead() -> None:
    provider = LexiconSentimentProvider()
    up = [
        Headline("BTC-USD", NOW - timedelta(minutes=m), t)
        for m, t in [(5, "Bitcoin surges to record high"), (9, "BTC rally as ETF inflows soar")]
    ]
    down = [
        Headline("BTC-USD", NOW - timedelta(minutes=m), t)
        for m, t in [(5, "Bitcoin plunges after exchange hack"), (9, "BTC crash wipes out gains")]
    ]
    bull = await provider.score("BTC-USD", up, NOW)
    bear = await provider.score("BTC-USD", down, NOW)
    assert bull.score > 0.3 and bull.label == "bullish" and bull.bullish == 2
    assert bear.score < -0.3 and bear.label == "bearish" and bear.bearish == 2
    assert 0 < bull.confidence <= 1
    # A headline stamped after ``now`` is never read.
    future = Headline("BTC-USD", NOW + timedelta(seconds=1), "Bitcoin crash, fraud, hack")
    assert (await provider.score("BTC-USD", [*up, future], NOW)).score == bull.score
    empty = await provider.score("BTC-USD", [future], NOW)
    assert (empty.score, empty.confidence, empty.headlines) == (0.0, 0.0, 0)
