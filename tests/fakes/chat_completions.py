"""A local OpenAI-compatible chat-completions server (the wire format Perplexity speaks)."""

from __future__ import annotations

import json
from collections import deque

from aiohttp import web

from tests.fakes._http import FakeHttpServer


class FakeChatCompletions(FakeHttpServer):
    """``POST /chat/completions``: bearer key checked; answers are queued per test.

    Queue a content string (sent as ``choices[0].message.content``), a dict (sent as the whole
    JSON body) or an int status (sent with a JSON error body; 429 carries ``Retry-After``).
    """

    def __init__(self, key: str = "test-key") -> None:
        super().__init__()
        self.key = key
        self.answers: deque = deque()
        self.bodies: list[dict] = []
        self.app.router.add_post("/chat/completions", self._complete)

    async def _complete(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return web.json_response({"error": {"message": "Invalid API key"}}, status=401)
        body = await request.json()
        self.bodies.append(body)
        answer = (
            self.answers.popleft()
            if self.answers
            else '{"score": 0, "confidence": 0, "bullish": 0, "bearish": 0}'
        )
        if isinstance(answer, int):
            headers = {"Retry-After": "0.01"} if answer == 429 else {}
            return web.json_response({"error": {"message": "busy"}}, status=answer, headers=headers)
        if isinstance(answer, dict):
            return web.json_response(answer)
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.bodies)}",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
            }
        )


def answer(score: float, confidence: float, bullish: int, bearish: int) -> str:
    """Return the JSON a model answers under the response schema."""
    return json.dumps(
        {"score": score, "confidence": confidence, "bullish": bullish, "bearish": bearish}
    )


RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Crypto wire</title>
{items}
</channel></rss>"""


class FakeNewsFeed(FakeHttpServer):
    """``GET /rss``: an RSS 2.0 document with the queued (rfc822 date, title) items."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[tuple[str, str]] = []
        self.app.router.add_get("/rss", self._rss)

    async def _rss(self, request: web.Request) -> web.Response:
        items = "\n".join(
            f"<item><title>{title}</title><pubDate>{date}</pubDate></item>"
            for date, title in self.items
        )
        return web.Response(text=RSS.format(items=items), content_type="application/rss+xml")
