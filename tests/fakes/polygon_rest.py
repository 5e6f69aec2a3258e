"""A local Polygon.io REST server for ``/v2/aggs`` (pagination, 429s, auth) on aiohttp."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes._http import FakeHttpServer
from tests.fakes.polygon_ws import BASE_MS


def aggregate_rows(count: int, *, start_ms: int = BASE_MS, step_ms: int = 60_000) -> list[dict]:
    """Return ``count`` consecutive aggregate rows ``{o,h,l,c,v,vw,n,t}``."""
    rows = []
    for n in range(count):
        price = 100.0 + n
        rows.append(
            {
                "o": price,
                "h": price + 2,
                "l": price - 1,
                "c": price + 1,
                "v": 10.0 + n,
                "vw": price + 0.5,
                "n": 5 + n,
                "t": start_ms + n * step_ms,
            }
        )
    return rows


def _to_ms(bound: str, end: bool) -> int:
    if bound.isdigit():
        return int(bound)
    day = datetime.fromisoformat(bound).replace(tzinfo=UTC)
    ms = int(day.timestamp() * 1000)
    return ms + 86_400_000 - 1 if end else ms


def _cursor(offset: int, limit: int) -> str:
    # Opaque like the real one; base64 padding ('=') checks that clients do not re-encode it.
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "l": limit}).encode()).decode()


class FakePolygonRest(FakeHttpServer):
    """Serve ``GET /v2/aggs/ticker/{ticker}/range/{mult}/{span}/{from}/{to}`` from ``rows``.

    ``page_size`` caps rows per page below the client's ``limit``; ``rate_limited`` answers that
    many requests with 429 (+ ``Retry-After``) first; ``errors`` answers the next requests with
    these (status, JSON body) pairs, one each; ``fail_with`` answers every request with one;
    ``repeat_next_url`` makes every page point at the same cursor.
    """

    def __init__(
        self,
        rows: list[dict[str, Any]] | None = None,
        *,
        api_key: str = "test-key",
        page_size: int | None = None,
        rate_limited: int = 0,
        retry_after: str | None = "0",
        repeat_next_url: bool = False,
        fail_with: tuple[int, dict[str, Any]] | None = None,
        errors: list[tuple[int, dict[str, Any]]] | None = None,
    ):
        super().__init__()
        self.rows = rows if rows is not None else aggregate_rows(10)
        self.api_key = api_key
        self.page_size = page_size
        self.rate_limited = rate_limited
        self.retry_after = retry_after
        self.repeat_next_url = repeat_next_url
        self.fail_with = fail_with
        self.errors = list(errors or [])
        self.app.router.add_get(
            "/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{start}/{end}", self._aggs
        )

    async def _aggs(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}" and request.query.get("apiKey") != self.api_key:
            body = {"status": "ERROR", "request_id": "r", "error": "Unknown API Key"}
            return web.json_response(body, status=401)
        if self.rate_limited > 0:
            self.rate_limited -= 1
            headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            error = "You've exceeded the maximum requests per minute, please wait or upgrade."
            body = {"status": "ERROR", "request_id": "r", "error": error}
            return web.json_response(body, status=429, headers=headers)
        if self.errors:
            status, body = self.errors.pop(0)
            return web.json_response(body, status=status)
        if self.fail_with is not None:
            return web.json_response(self.fail_with[1], status=self.fail_with[0])
        return web.json_response(self._page(request))

    def _page(self, request: web.Request) -> dict[str, Any]:
        lo = _to_ms(request.match_info["start"], end=False)
        hi = _to_ms(request.match_info["end"], end=True)
        rows = sorted((r for r in self.rows if lo <= r["t"] <= hi), key=lambda r: r["t"])
        if request.query.get("sort") == "desc":
            rows.reverse()
        offset, limit = 0, int(request.query.get("limit", "5000"))
        if "cursor" in request.query:
            state = json.loads(base64.urlsafe_b64decode(request.query["cursor"]))
            offset, limit = state["o"], state["l"]
        size = min(limit, self.page_size or limit)
        page = rows[offset : offset + size]
        body: dict[str, Any] = {
            "ticker": request.match_info["ticker"],
            "queryCount": len(page),
            "resultsCount": len(page),
            "adjusted": True,
            "results": page,
            "status": "OK",
            "request_id": f"req-{len(self.requests)}",
        }
        if offset + size < len(rows) or self.repeat_next_url:
            nxt = offset if self.repeat_next_url else offset + size
            # Real next_urls point at the public host; clients must re-root them on their base.
            body["next_url"] = f"https://api.polygon.io{request.path}?cursor={_cursor(nxt, limit)}"
        return body
