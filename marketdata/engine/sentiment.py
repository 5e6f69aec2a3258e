"""Headline sentiment: the provider contract, a lexicon provider and the LLM prompt and schema.

Pure Python (no Django). A provider turns a symbol's recent headlines into one
``SentimentScore`` in [-1, 1] with a confidence in [0, 1]. The LLM provider's transport lives in
``marketdata.adapters.sentiment_llm``; what it asks (a fixed prompt, a JSON schema) and how an
answer is validated live here, so a malformed or out-of-range answer is refused the same way
whichever server produced it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

# Words VADER's general-purpose lexicon does not score but market headlines lean on
# (valence on VADER's -4..4 scale). Without them "BTC surges to record high" scores 0.
MARKET_LEXICON: dict[str, float] = {
    "surge": 2.2,
    "surges": 2.2,
    "soar": 2.4,
    "soars": 2.4,
    "rally": 2.0,
    "rallies": 2.0,
    "bullish": 2.4,
    "record": 1.2,
    "inflows": 1.5,
    "gain": 1.6,
    "gains": 1.6,
    "jumps": 1.6,
    "rebound": 1.5,
    "rebounds": 1.5,
    "breakout": 1.6,
    "upgrade": 1.6,
    "approval": 1.8,
    "plunge": -2.6,
    "plunges": -2.6,
    "crash": -3.0,
    "crashes": -3.0,
    "tumble": -2.2,
    "tumbles": -2.2,
    "slump": -2.0,
    "slumps": -2.0,
    "bearish": -2.4,
    "outflows": -1.5,
    "selloff": -2.2,
    "sell-off": -2.2,
    "liquidations": -1.8,
    "hack": -2.8,
    "hacked": -2.8,
    "exploit": -2.5,
    "lawsuit": -1.8,
    "ban": -2.0,
    "bans": -2.0,
    "fraud": -3.0,
    "downgrade": -1.6,
    "drops": -1.4,
    "falls": -1.3,
    "dumps": -2.0,
}
LABEL_BAND = 0.05  # |score| below this is neutral (VADER's own convention for compound)
MAX_HEADLINES = 30
MAX_HEADLINE_CHARS = 300

SYSTEM_PROMPT = (
    "You are a financial news analyst. Score the sentiment of the given headlines for the "
    "named crypto asset's price over the next day. Answer only with JSON matching the schema: "
    "score from -1 (very bearish) to 1 (very bullish), confidence from 0 to 1, and the number "
    "of bullish and bearish headlines. Ignore headlines that are not about the asset."
)
RESPONSE_SCHEMA: dict[str, Any] = {
    "name": "headline_sentiment",
    "strict": True,
    "schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["score", "confidence", "bullish", "bearish"],
        "properties": {
            "score": {"type": "number", "minimum": -1, "maximum": 1},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "bullish": {"type": "integer", "minimum": 0},
            "bearish": {"type": "integer", "minimum": 0},
        },
    },
}


class SentimentAnswerInvalid(ValueError):
    """A provider's answer that is malformed or out of range (quarantined, never stored)."""

    def __init__(self, reason: str, raw: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw[:4000]


@dataclass(frozen=True, slots=True)
class Headline:
    """One news headline about ``symbol`` published at ``ts``."""

    symbol: str
    ts: datetime
    title: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class SentimentScore:
    """A provider's reading of one symbol's headlines at ``ts``."""

    symbol: str
    ts: datetime
    source: str
    score: float
    confidence: float
    bullish: int
    bearish: int
    headlines: int

    @property
    def label(self) -> str:
        """Return bullish, bearish or neutral."""
        if self.score >= LABEL_BAND:
            return "bullish"
        if self.score <= -LABEL_BAND:
            return "bearish"
        return "neutral"


class SentimentProvider(Protocol):
    """Scores one symbol's headlines; raises SentimentAnswerInvalid for an unusable answer."""

    name: str

    async def score(
        self, symbol: str, headlines: Sequence[Headline], now: datetime
    ) -> SentimentScore:
        """Return the reading at ``now`` from ``headlines`` (all published at or before now)."""
        ...


def usable_headlines(headlines: Sequence[Headline], now: datetime) -> list[Headline]:
    """Keep headlines published at or before ``now`` (never ahead), newest first, bounded."""
    kept = sorted((h for h in headlines if h.ts <= now), key=lambda h: h.ts, reverse=True)
    return kept[:MAX_HEADLINES]


class LexiconSentimentProvider:
    """VADER (lexicon and rules) with ``MARKET_LEXICON`` added; needs no key or network."""

    name = "lexicon:vader"

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()
        self._analyzer.lexicon.update(MARKET_LEXICON)

    async def score(
        self, symbol: str, headlines: Sequence[Headline], now: datetime
    ) -> SentimentScore:
        """Average VADER's compound score over the headlines; confidence grows with agreement."""
        kept = usable_headlines(headlines, now)
        compounds = [self._analyzer.polarity_scores(h.title)["compound"] for h in kept]
        bullish = sum(c >= LABEL_BAND for c in compounds)
        bearish = sum(c <= -LABEL_BAND for c in compounds)
        if not compounds:
            return SentimentScore(symbol, now, self.name, 0.0, 0.0, 0, 0, 0)
        mean = sum(compounds) / len(compounds)
        # Share of headlines that are not neutral, damped when there are few (n + 2).
        confidence = (bullish + bearish) / (len(compounds) + 2)
        return SentimentScore(
            symbol,
            now,
            self.name,
            _clamp(mean),
            _clamp(confidence, 0.0),
            bullish,
            bearish,
            len(compounds),
        )


def llm_request_body(
    model: str, symbol: str, headlines: Sequence[Headline], *, schema: bool = True
) -> dict[str, Any]:
    """Return the chat-completions request for ``symbol``'s headlines (deterministic)."""
    lines = "\n".join(
        f"- [{h.ts:%Y-%m-%d %H:%M}Z] {h.title[:MAX_HEADLINE_CHARS]}" for h in headlines
    )
    body: dict[str, Any] = {
        "model": model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Asset: {symbol}\nHeadlines:\n{lines}"},
        ],
    }
    if schema:
        body["response_format"] = {"type": "json_schema", "json_schema": RESPONSE_SCHEMA}
    return body


def request_key(model: str, symbol: str, headlines: Sequence[Headline]) -> str:
    """Return a cache key: the same headlines for the same symbol and model score once."""
    text = json.dumps(llm_request_body(model, symbol, headlines), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def llm_answer_parse(
    completion: Any, *, symbol: str, now: datetime, source: str, headlines: int
) -> SentimentScore:
    """Validate a chat-completions response; raise SentimentAnswerInvalid when unusable."""
    raw = json.dumps(completion)[:4000] if not isinstance(completion, str) else completion
    try:
        content = completion["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise SentimentAnswerInvalid("no choices[0].message.content", raw) from None
    if not isinstance(content, str):
        raise SentimentAnswerInvalid("message content is not text", raw)
    answer = _json_object(content.strip(), raw)
    extra = set(answer) - set(RESPONSE_SCHEMA["schema"]["properties"])
    if extra:
        raise SentimentAnswerInvalid(f"unexpected fields {sorted(extra)}", raw)
    score = _number(answer, "score", -1.0, 1.0, raw)
    confidence = _number(answer, "confidence", 0.0, 1.0, raw)
    bullish = _count(answer, "bullish", headlines, raw)
    bearish = _count(answer, "bearish", headlines, raw)
    if bullish + bearish > headlines:
        raise SentimentAnswerInvalid(f"{bullish + bearish} labelled of {headlines} headlines", raw)
    return SentimentScore(symbol, now, source, score, confidence, bullish, bearish, headlines)


def _json_object(content: str, raw: str) -> dict:
    if content.startswith("```"):  # some servers fence JSON despite response_format
        content = content.strip("`").removeprefix("json").strip()
    try:
        answer = json.loads(content)
    except ValueError:
        raise SentimentAnswerInvalid("content is not JSON", raw) from None
    if not isinstance(answer, dict):
        raise SentimentAnswerInvalid("content is not a JSON object", raw)
    return answer


def _number(answer: dict, name: str, low: float, high: float, raw: str) -> float:
    value = answer.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SentimentAnswerInvalid(f"{name} missing or not a number", raw)
    if not math.isfinite(value) or not low <= value <= high:
        raise SentimentAnswerInvalid(f"{name} {value!r} outside [{low:g}, {high:g}]", raw)
    return float(value)


def _count(answer: dict, name: str, most: int, raw: str) -> int:
    value = answer.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise SentimentAnswerInvalid(f"{name} {value!r} is not a count in [0, {most}]", raw)
    return value


def _clamp(value: float, low: float = -1.0, high: float = 1.0) -> float:
    return max(low, min(high, value))
