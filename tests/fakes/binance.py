"""Local Binance spot venues: the combined WebSocket stream and the REST klines ccxt calls."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from websockets.asyncio.server import ServerConnection

from tests.fakes._http import FakeHttpServer
from tests.fakes._ws import FakeWebSocketServer, Frame, Script
from tests.fakes.polygon_ws import BASE_MS


def binance_trade(
    trade_id: int,
    price: float = 50_000.0,
    qty: float = 0.01,
    t: int = BASE_MS,
    *,
    symbol: str = "BTCUSDT",
    buyer_is_maker: bool = False,
) -> dict[str, Any]:
    """Return a ``<symbol>@trade`` payload (prices are strings on the wire)."""
    return {"e": "trade", "E": t + 1, "s": symbol, "t": trade_id, "p": f"{price:.2f}"} | {
        "q": f"{qty:.8f}",
        "T": t,
        "m": buyer_is_maker,
        "M": True,
    }


def binance_kline(
    start_ms: int = BASE_MS,
    *,
    closed: bool = True,
    interval: str = "1m",
    symbol: str = "BTCUSDT",
    ohlc: tuple[float, float, float, float] = (100.0, 110.0, 90.0, 105.0),
    volume: float = 10.0,
    quote_volume: float = 1_010.0,
    trades: int = 42,
) -> dict[str, Any]:
    """Return a ``<symbol>@kline_<interval>`` payload."""
    width = {"1s": 1_000, "1m": 60_000, "5m": 300_000, "1h": 3_600_000}.get(interval, 60_000)
    o, h, low, c = (f"{v:.2f}" for v in ohlc)
    kline = {"t": start_ms, "T": start_ms + width - 1, "s": symbol, "i": interval, "f": 1, "L": 2}
    kline |= {"o": o, "h": h, "l": low, "c": c, "v": f"{volume:.8f}", "n": trades, "x": closed}
    kline |= {"q": f"{quote_volume:.8f}", "V": "0", "Q": "0", "B": "0"}
    return {"e": "kline", "E": start_ms + 5, "s": symbol, "k": kline}


def stream_name(event: dict[str, Any]) -> str:
    """Return the combined-stream name an event is published on."""
    symbol = str(event.get("s", "")).lower()
    if event.get("e") == "kline":
        kline = event.get("k")
        interval = kline.get("i", "1m") if isinstance(kline, dict) else "1m"
        return f"{symbol}@kline_{interval}"
    return f"{symbol}@{event.get('e')}"


class FakeBinanceServer(FakeWebSocketServer):
    """Binance combined stream at ``/stream?streams=a/b``: wraps payloads as {stream, data}.

    ``script.frames`` holds raw payloads (wrapped on the way out; only requested streams are
    sent) or str frames sent verbatim. ``requested`` records each connection's stream list.
    Use ``server.url`` (ws://127.0.0.1:port) as the adapter's base URL.
    """

    path = ""

    def __init__(self, script: Script | None = None, *, compression: str | None = None):
        super().__init__(compression=compression)
        self.script = script or Script()
        self.requested: list[list[str]] = []

    async def serve_connection(self, ws: ServerConnection, index: int) -> None:
        parts = urlsplit(ws.request.path)
        streams = parse_qs(parts.query).get("streams", [""])[0].split("/")
        self.requested.append(streams)
        if parts.path != "/stream" or not streams[0]:
            await ws.close(1008, "expected /stream?streams=...")
            return
        frames, action = self.script.plan(index)
        await self.emit(ws, frames, self.script.rate, keep=lambda f: _wrap(f, set(streams)))
        await self.finish(ws, index, action)


def _wrap(frame: Frame, streams: set[str]) -> Frame | None:
    if not isinstance(frame, dict) or "stream" in frame:
        return frame  # raw text or an already wrapped message: send as is
    name = stream_name(frame)
    return {"stream": name, "data": frame} if name in streams else None


def kline_rows(count: int, *, start_ms: int = BASE_MS, step_ms: int = 60_000) -> list[list[Any]]:
    """Return ``count`` Binance REST kline rows ``[open_time, o, h, l, c, v, close_time, ...]``."""
    rows = []
    for n in range(count):
        t = start_ms + n * step_ms
        price = 100.0 + n
        rows.append(
            [t, f"{price:.2f}", f"{price + 2:.2f}", f"{price - 1:.2f}", f"{price + 1:.2f}"]
            + [f"{10 + n:.4f}", t + step_ms - 1, "1000.0", 7 + n, "5.0", "500.0", "0"]
        )
    return rows


def binance_spot_market(symbol: str = "BTC/USDT") -> dict[str, Any]:
    """Return a unified ccxt spot market for ``exchange.set_markets`` (no exchangeInfo call)."""
    from tests.fakes.exchange_binance import binance_market

    return binance_market(symbol)


class FakeBinanceRest(FakeHttpServer):
    """Binance spot REST ``GET /api/v3/klines`` as ccxt calls it (symbol, interval, startTime,
    endTime, limit), serving ``rows`` sorted by open time, capped at 1000 per request.

    ``errors`` answers the next requests with (status, body) pairs, one each (a dict body is
    sent as JSON, a str as text/html like Binance's gateway pages); a request
    for a symbol not in ``symbols`` gets Binance's ``-1121 Invalid symbol`` (HTTP 400).
    """

    def __init__(
        self,
        rows: list[list[Any]] | None = None,
        *,
        symbols: tuple[str, ...] = ("BTCUSDT",),
        errors: list[tuple[int, Any]] | None = None,
    ):
        super().__init__()
        self.rows = sorted(rows if rows is not None else kline_rows(10), key=lambda r: r[0])
        self.symbols = symbols
        self.errors = list(errors or [])
        self.app.router.add_get("/api/v3/klines", self._klines)

    async def _klines(self, request: web.Request) -> web.Response:
        if self.errors:
            status, body = self.errors.pop(0)
            if isinstance(body, str):
                return web.Response(text=body, status=status, content_type="text/html")
            return web.json_response(body, status=status)
        if request.query.get("symbol") not in self.symbols:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        start = int(request.query.get("startTime", 0))
        end = int(request.query.get("endTime", 2**62))
        limit = min(int(request.query.get("limit", 500)), 1000)
        rows = [r for r in self.rows if start <= r[0] <= end][:limit]
        return web.json_response(rows)
