"""A local Polygon.io crypto WebSocket server speaking the real wire protocol (see PROTOCOLS.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection

from tests.fakes._ws import FakeWebSocketServer, Frame, Script, encode

BASE_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def status(status_value: str, message: str) -> list[dict[str, str]]:
    """Return a Polygon status frame."""
    return [{"ev": "status", "status": status_value, "message": message}]


def polygon_trade(
    price: float = 50_000.0,
    size: float = 0.1,
    t: int = BASE_MS,
    *,
    pair: str = "BTC-USD",
    i: str | None = None,
    c: Sequence[int] = (2,),
    x: int = 1,
) -> dict[str, Any]:
    """Return an XT event."""
    event: dict[str, Any] = {
        "ev": "XT",
        "pair": pair,
        "p": price,
        "s": size,
        "x": x,
        "c": list(c),
        "t": t,
        "r": t + 3,
    }
    if i is not None:
        event["i"] = i
    return event


def polygon_quote(
    bid: float = 49_999.0,
    ask: float = 50_001.0,
    t: int = BASE_MS,
    *,
    pair: str = "BTC-USD",
    bid_size: float = 1.0,
    ask_size: float = 2.0,
) -> dict[str, Any]:
    """Return an XQ event."""
    return {
        "ev": "XQ",
        "pair": pair,
        "bp": bid,
        "bs": bid_size,
        "ap": ask,
        "as": ask_size,
        "x": 1,
        "t": t,
        "r": t + 2,
    }


def polygon_bar(
    start_ms: int = BASE_MS,
    *,
    ev: str = "XA",
    pair: str = "BTC-USD",
    ohlc: tuple[float, float, float, float] = (100.0, 110.0, 90.0, 105.0),
    volume: float = 12.0,
    vwap: float = 101.0,
    avg_size: float = 0.5,
) -> dict[str, Any]:
    """Return an XA (minute) or XAS (second) bar event."""
    width = 60_000 if ev == "XA" else 1_000
    o, h, low, c = ohlc
    return {
        "ev": ev,
        "pair": pair,
        "o": o,
        "h": h,
        "l": low,
        "c": c,
        "v": volume,
        "vw": vwap,
        "z": avg_size,
        "s": start_ms,
        "e": start_ms + width,
    }


def polygon_book(
    bids: Sequence[tuple[float, float]],
    asks: Sequence[tuple[float, float]],
    t: int = BASE_MS,
    *,
    pair: str = "BTC-USD",
) -> dict[str, Any]:
    """Return an XL2 event."""
    return {
        "ev": "XL2",
        "pair": pair,
        "b": [list(b) for b in bids],
        "a": [list(a) for a in asks],
        "t": t,
        "x": 1,
        "r": t + 1,
    }


def trade_frames(
    count: int, *, per_frame: int = 1, pair: str = "BTC-USD", start_ms: int = BASE_MS
) -> list[Frame]:
    """Return ``count`` frames of ``per_frame`` distinct trades each (replays, benchmarks)."""
    frames = []
    for f in range(count):
        frames.append(
            [
                polygon_trade(50_000.0 + n, 0.01, start_ms + n, pair=pair, i=str(n))
                for n in range(f * per_frame, (f + 1) * per_frame)
            ]
        )
    return frames


class FakePolygonServer(FakeWebSocketServer):
    """Polygon crypto cluster: connected status, auth by key, subscribe acks, scripted events.

    Only events matching the connection's subscriptions (``XT.BTC-USD`` or ``XT.*``) are sent,
    so a client that forgets to re-subscribe after a reconnect receives nothing.
    """

    path = "/crypto"

    def __init__(
        self,
        script: Script | None = None,
        *,
        api_keys: Iterable[str] = ("test-key",),
        compression: str | None = None,
    ):
        super().__init__(compression=compression)
        self.script = script or Script()
        self.api_keys = frozenset(api_keys)
        self.auth_attempts = 0
        self.subscriptions: list[set[str]] = []

    async def serve_connection(self, ws: ServerConnection, index: int) -> None:
        subs: set[str] = set()
        self.subscriptions.append(subs)
        await ws.send(encode(status("connected", "Connected Successfully")))
        auth = await self.recv_json(ws, index)
        self.auth_attempts += 1
        if auth.get("action") != "auth" or auth.get("params") not in self.api_keys:
            await ws.send(encode(status("auth_failed", "authentication failed")))
            await ws.close()
            return
        await ws.send(encode(status("auth_success", "authenticated")))
        subscribe = await self.recv_json(ws, index)
        if subscribe.get("action") != "subscribe":
            await ws.send(encode(status("error", "expected subscribe")))
            await ws.close()
            return
        for param in str(subscribe.get("params", "")).split(","):
            subs.add(param.strip())
            await ws.send(encode(status("success", f"subscribed to: {param.strip()}")))
        frames, action = self.script.plan(index)
        await self.emit(ws, frames, self.script.rate, keep=lambda frame: _only(frame, subs))
        await self.finish(ws, index, action)


def _only(frame: Frame, subs: set[str]) -> Frame | None:
    """Keep the events of ``frame`` this connection subscribed to; raw strings pass untouched."""
    if not isinstance(frame, list):
        return frame
    kept = [event for event in frame if _subscribed(event, subs)]
    return kept or None


def _subscribed(event: Any, subs: set[str]) -> bool:
    if not isinstance(event, dict) or not isinstance(event.get("ev"), str):
        return True  # malformed on purpose: let it through for the client to quarantine
    if event["ev"] == "status":
        return True
    return f"{event['ev']}.{event.get('pair')}" in subs or f"{event['ev']}.*" in subs
