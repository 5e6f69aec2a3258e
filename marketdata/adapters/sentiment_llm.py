"""An LLM sentiment provider over the OpenAI-compatible chat-completions API.

Perplexity (``https://api.perplexity.ai``), OpenAI and local servers speak the same protocol:
``POST {base}/chat/completions`` with ``Authorization: Bearer <key>``, a ``messages`` list and
``response_format`` (a JSON schema); the answer is in ``choices[0].message.content``. Answers
are cached by request (the same headlines are scored once) and requests are spaced by
``min_interval`` seconds; HTTP 429/5xx are retried with back-off (``Retry-After`` honoured).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime

import aiohttp

from marketdata.adapters.base import FeedAuthError, FeedProtocolError
from marketdata.engine.sentiment import (
    Headline,
    SentimentAnswerInvalid,
    SentimentScore,
    llm_answer_parse,
    llm_request_body,
    request_key,
    usable_headlines,
)

MAX_RETRY_AFTER = 120.0
RETRYABLE = {429, 500, 502, 503, 504}


class LLMSentimentProvider:
    """Score headlines with a chat-completions model; see the module docstring."""

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        model: str,
        min_interval: float = 1.0,
        cache_size: int = 1024,
        max_attempts: int = 4,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        if not url or not api_key:
            raise FeedAuthError("the LLM sentiment provider needs SENTIMENT_LLM_URL and a key")
        self.url = url.rstrip("/") + "/chat/completions"
        self.name = f"llm:{model}"
        self._key = api_key
        self.model = model
        self.min_interval = min_interval
        self._cache: OrderedDict[str, SentimentScore] = OrderedDict()
        self._cache_size = cache_size
        self._attempts = max_attempts
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._sleep = sleep
        self._next_at = 0.0
        self.requests = 0
        self.cache_hits = 0
        self._session: aiohttp.ClientSession | None = None

    async def score(
        self, symbol: str, headlines: Sequence[Headline], now: datetime
    ) -> SentimentScore:
        """Return the model's reading of ``symbol``'s headlines at ``now`` (cached by request)."""
        kept = usable_headlines(headlines, now)
        if not kept:
            return SentimentScore(symbol, now, self.name, 0.0, 0.0, 0, 0, 0)
        key = request_key(self.model, symbol, kept)
        cached = self._cache.get(key)
        if cached is not None:
            self.cache_hits += 1
            self._cache.move_to_end(key)
            return SentimentScore(
                symbol,
                now,
                self.name,
                cached.score,
                cached.confidence,
                cached.bullish,
                cached.bearish,
                cached.headlines,
            )
        completion = await self._post(llm_request_body(self.model, symbol, kept))
        reading = llm_answer_parse(
            completion, symbol=symbol, now=now, source=self.name, headlines=len(kept)
        )
        self._cache[key] = reading
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return reading

    async def _post(self, body: dict) -> object:
        """POST with spacing and bounded retries; return the decoded JSON answer."""
        session = self._session or aiohttp.ClientSession(timeout=self._timeout)
        self._session = session
        headers = {"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"}
        for attempt in range(self._attempts):
            wait = self._next_at - self._clock()
            if wait > 0:
                await self._sleep(wait)
            self._next_at = self._clock() + self.min_interval
            self.requests += 1
            async with session.post(self.url, json=body, headers=headers) as response:
                text = await response.text()
                if response.status in (401, 403):
                    raise FeedAuthError(f"sentiment LLM refused the key (HTTP {response.status})")
                if response.status in RETRYABLE and attempt + 1 < self._attempts:
                    await self._sleep(_retry_after(response.headers, attempt))
                    continue
                if response.status != 200:
                    raise FeedProtocolError(
                        "sentiment LLM error", status=response.status, body=text
                    )
                try:
                    return await response.json(content_type=None)
                except ValueError:
                    raise SentimentAnswerInvalid("response is not JSON", text) from None
        raise FeedProtocolError("sentiment LLM: retries used up")  # pragma: no cover

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _retry_after(headers, attempt: int) -> float:
    value = headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else 2.0**attempt
    except ValueError:
        seconds = 2.0**attempt
    if seconds > MAX_RETRY_AFTER:
        raise FeedProtocolError(f"sentiment LLM asks to wait {seconds:g}s; giving up")
    return max(seconds, 0.0)
