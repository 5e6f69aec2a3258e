"""A local Coinbase Exchange WebSocket feed (subscribe, snapshot, l2update, matches, ticker)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from websockets.asyncio.server import ServerConnection

from tests.fakes._ws import FakeWebSocketServer, encode

BASE_TIME = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


@dataclass(slots=True)
class Step:
    """One scripted action: send an update/match/ticker, lose an update, or send raw text."""

    kind: str  # "l2" | "lost_l2" | "match" | "ticker" | "heartbeat" | "raw"
    product: str = "BTC-USD"
    changes: list[list[str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    text: str = ""


def l2(product: str, *changes: tuple[str, float, float]) -> Step:
    """Return a step sending an l2update with (side, price, size) changes."""
    return Step("l2", product, [[s, str(p), str(q)] for s, p, q in changes])


def lost_l2(product: str, *changes: tuple[str, float, float]) -> Step:
    """Return a step applying changes to the venue book without sending them: a sequence gap."""
    return Step("lost_l2", product, [[s, str(p), str(q)] for s, p, q in changes])


def match(product: str, price: float, size: float, maker_side: str) -> Step:
    """Return a step sending a match (``maker_side`` is the resting order's side)."""
    return Step("match", product, data={"price": str(price), "size": str(size), "side": maker_side})


def ticker(
    product: str, bid: float, ask: float, bid_size: float = 1.0, ask_size: float = 1.0
) -> Step:
    """Return a step sending a ticker."""
    data = {"best_bid": str(bid), "best_ask": str(ask)}
    data |= {"best_bid_size": str(bid_size), "best_ask_size": str(ask_size)}
    return Step("ticker", product, data=data)


def raw(text: str) -> Step:
    """Return a step sending ``text`` verbatim (e.g. a malformed frame)."""
    return Step("raw", text=text)


@dataclass(slots=True)
class _Product:
    bids: dict[float, float]
    asks: dict[float, float]
    book_seq: int = 100
    order_seq: int = 5_000
    trade_id: int = 900
    last_match: dict[str, Any] | None = None


class FakeCoinbaseServer(FakeWebSocketServer):
    """Coinbase Exchange feed with a venue-side book per product.

    After ``subscribe`` it acks with ``subscriptions``, sends ``last_match`` (if any) and a level-2
    ``snapshot`` of its current book, then plays ``steps`` (shared across connections, so a
    reconnect resumes where the drop happened). A resubscribe of the level-2 channel gets a fresh
    snapshot, which is how clients resync. Level-2 messages carry a contiguous per-product
    ``sequence`` when ``l2_sequence`` (the public ``level2_batch`` omits it); matches and tickers
    carry the order sequence, which skips like the real one. ``drop_after`` aborts the first
    connection after that many steps; ``step_delay`` spaces steps so resyncs can interleave.
    """

    def __init__(
        self,
        steps: list[Step] | None = None,
        *,
        books: dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]]]] | None = None,
        l2_sequence: bool = True,
        drop_after: int | None = None,
        step_delay: float = 0.0,
    ):
        super().__init__()
        books = books or {"BTC-USD": ([(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.5), (102.0, 3.0)])}
        self.products = {
            p: _Product(bids=dict(bids), asks=dict(asks)) for p, (bids, asks) in books.items()
        }
        self.steps = list(steps or [])
        self.l2_sequence = l2_sequence
        self.drop_after = drop_after
        self.step_delay = step_delay
        self.snapshots_sent = 0
        self.cursor = 0
        self._clock = 0

    def book(self, product: str) -> tuple[tuple[tuple[float, float], ...], ...]:
        """Return the venue's true (bids high→low, asks low→high) for comparisons."""
        state = self.products[product]
        return (
            tuple(sorted(state.bids.items(), reverse=True)),
            tuple(sorted(state.asks.items())),
        )

    async def serve_connection(self, ws: ServerConnection, index: int) -> None:
        subscribed: dict[str, set[str]] = {}
        first = await asyncio.wait_for(self.recv_json(ws, index), 5)  # venue rule: within 5 s
        await self._subscribe(ws, first, subscribed)
        reader = asyncio.create_task(self._read_commands(ws, index, subscribed))
        try:
            await self._play(ws, index, subscribed)
            if index == 0 and self.drop_after is not None:
                ws.transport.abort()
                return
            await reader
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _read_commands(
        self, ws: ServerConnection, index: int, subscribed: dict[str, set[str]]
    ) -> None:
        with contextlib.suppress(Exception):
            while True:
                message = await self.recv_json(ws, index)
                if message.get("type") == "subscribe":
                    await self._subscribe(ws, message, subscribed)
                elif message.get("type") == "unsubscribe":
                    for channel in message.get("channels", []):
                        subscribed.get(channel, set()).difference_update(message["product_ids"])
                    await self._ack(ws, subscribed)

    async def _subscribe(
        self, ws: ServerConnection, message: dict[str, Any], subscribed: dict[str, set[str]]
    ) -> None:
        products = [p for p in message.get("product_ids", []) if p in self.products]
        for channel in message.get("channels", []):
            subscribed.setdefault(channel, set()).update(products)
        await self._ack(ws, subscribed)
        for product in products:
            state = self.products[product]
            if "matches" in message.get("channels", []) and state.last_match is not None:
                await self._send(ws, state.last_match | {"type": "last_match"})
            if {"level2", "level2_batch"} & set(message.get("channels", [])):
                await self._send(ws, self._snapshot(product))

    async def _ack(self, ws: ServerConnection, subscribed: dict[str, set[str]]) -> None:
        channels = [{"name": c, "product_ids": sorted(p)} for c, p in subscribed.items() if p]
        await self._send(ws, {"type": "subscriptions", "channels": channels})

    async def _play(
        self, ws: ServerConnection, index: int, subscribed: dict[str, set[str]]
    ) -> None:
        sent = 0
        while self.cursor < len(self.steps):
            if index == 0 and self.drop_after is not None and sent >= self.drop_after:
                return
            step = self.steps[self.cursor]
            self.cursor += 1
            sent += 1
            message = self._apply(step)
            if message is not None and self._wants(subscribed, step, message):
                await self._send(ws, message)
            if self.step_delay:
                await asyncio.sleep(self.step_delay)

    def _wants(self, subscribed: dict[str, set[str]], step: Step, message: Any) -> bool:
        if step.kind == "raw":
            return True
        channel = {"l2": "level2", "match": "matches", "ticker": "ticker"}.get(step.kind)
        if channel == "level2":
            return any(step.product in subscribed.get(c, set()) for c in ("level2", "level2_batch"))
        if channel is None:
            return True
        return step.product in subscribed.get(channel, set())

    def _apply(self, step: Step) -> Any:
        """Advance venue state for ``step`` and return the wire message (None if lost)."""
        if step.kind == "raw":
            return step.text
        state = self.products[step.product]
        self._clock += 1
        now = (BASE_TIME + timedelta(milliseconds=self._clock)).isoformat().replace("+00:00", "Z")
        base = {"product_id": step.product, "time": now}
        if step.kind in ("l2", "lost_l2"):
            for side, price, size in step.changes:
                levels = state.bids if side == "buy" else state.asks
                if float(size) == 0:
                    levels.pop(float(price), None)
                else:
                    levels[float(price)] = float(size)
            state.book_seq += 1
            if step.kind == "lost_l2":
                return None
            message = base | {"type": "l2update", "changes": step.changes}
            return message | ({"sequence": state.book_seq} if self.l2_sequence else {})
        state.order_seq += 3  # order events of other channels consume sequence numbers too
        if step.kind == "match":
            state.trade_id += 1
            message = base | step.data | {"type": "match", "trade_id": state.trade_id}
            message |= {"sequence": state.order_seq, "maker_order_id": "m", "taker_order_id": "t"}
            state.last_match = message
            return message
        if step.kind == "ticker":
            return base | step.data | {"type": "ticker", "sequence": state.order_seq}
        return base | {"type": "heartbeat", "sequence": state.order_seq, "last_trade_id": 0}

    def _snapshot(self, product: str) -> dict[str, Any]:
        self.snapshots_sent += 1
        state = self.products[product]
        bids, asks = self.book(product)
        message: dict[str, Any] = {"type": "snapshot", "product_id": product}
        message["bids"] = [[str(p), str(s)] for p, s in bids]
        message["asks"] = [[str(p), str(s)] for p, s in asks]
        if self.l2_sequence:
            message["sequence"] = state.book_seq
        return message

    async def _send(self, ws: ServerConnection, message: Any) -> None:
        self.frames_sent += 1
        await ws.send(encode(message))
