"""Shared plumbing for the fake WebSocket venues: lifecycle, scripted emission, drops, pacing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

# A scripted frame: JSON-serialisable payload, or a str sent verbatim (e.g. a malformed frame).
Frame = Any


def encode(frame: Frame) -> str:
    """Return the wire text of a scripted frame."""
    return frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))


@dataclass(slots=True)
class Script:
    """What a fake sends after the handshake, and how it misbehaves.

    On the first connection frames ``[0:drop_after]`` are sent and then the TCP connection is
    aborted (a network drop, no close frame). Later connections replay from
    ``drop_after - replay_overlap`` so clients must de-duplicate. ``stall_after`` instead goes
    silent (connection kept open) after that many frames on the first connection, to exercise
    idle timeouts. ``rate`` paces frames per second (None = as fast as possible).
    """

    frames: list[Frame] = field(default_factory=list)
    drop_after: int | None = None
    replay_overlap: int = 0
    stall_after: int | None = None
    rate: float | None = None

    def plan(self, connection_index: int) -> tuple[list[Frame], str]:
        """Return the frames to send on a connection and then 'drop', 'stall' or 'hold'."""
        if connection_index == 0:
            if self.drop_after is not None:
                return self.frames[: self.drop_after], "drop"
            if self.stall_after is not None:
                return self.frames[: self.stall_after], "stall"
            return list(self.frames), "hold"
        cut = self.drop_after if self.drop_after is not None else self.stall_after
        start = 0 if cut is None else max(0, cut - self.replay_overlap)
        return self.frames[start:], "hold"


class FakeWebSocketServer:
    """A local WebSocket venue on 127.0.0.1 with a random free port.

    Use as ``async with FakeX(...) as server:`` and connect to ``server.url``. Counters let tests
    assert behaviour: ``connections`` (accepted handshakes), ``client_messages`` (decoded JSON the
    client sent, one list per connection), ``sent_at`` (time.monotonic() per data frame sent).
    """

    path = "/"

    def __init__(self, *, compression: str | None = None):
        self.connections = 0
        self.client_messages: list[list[Any]] = []
        self.sent_at: list[float] = []
        self.frames_sent = 0
        self.url = ""
        self._compression = compression
        self._server: Server | None = None
        self._live: set[ServerConnection] = set()

    async def start(self) -> str:
        """Start listening and return the URL."""
        self._server = await serve(self._handler, "127.0.0.1", 0, compression=self._compression)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}{self.path}"
        return self.url

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            for ws in list(self._live):
                ws.transport.abort()
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 2.0) -> None:
        """Poll ``predicate`` until true or raise TimeoutError."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.005)

    async def _handler(self, ws: ServerConnection) -> None:
        index = self.connections
        self.connections += 1
        self.client_messages.append([])
        self._live.add(ws)
        try:
            await self.serve_connection(ws, index)
        except ConnectionClosed:
            pass
        finally:
            self._live.discard(ws)

    async def serve_connection(self, ws: ServerConnection, index: int) -> None:
        """Speak the venue protocol on one connection (subclasses override)."""
        raise NotImplementedError

    async def recv_json(self, ws: ServerConnection, index: int) -> Any:
        """Receive, decode and record one client message."""
        message = json.loads(await ws.recv())
        self.client_messages[index].append(message)
        return message

    async def emit(
        self,
        ws: ServerConnection,
        frames: Sequence[Frame],
        rate: float | None,
        keep: Callable[[Frame], Frame | None] = lambda frame: frame,
    ) -> None:
        """Send frames (filtered through ``keep``), paced at ``rate`` frames/s on a fixed grid."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, frame in enumerate(frames):
            if rate:
                # A fixed schedule (not sleep-per-frame) keeps the average rate exact.
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            kept = keep(frame)
            if kept is None:
                continue
            self.sent_at.append(time.monotonic())
            self.frames_sent += 1
            await ws.send(encode(kept))

    async def finish(self, ws: ServerConnection, index: int, action: str) -> None:
        """Drop, stall or hold the connection after the scripted frames."""
        if action == "drop":
            ws.transport.abort()
            return
        # 'stall' and 'hold' both keep the socket open (recording what the client sends) until
        # the client goes away; a stalled connection simply never sends another frame.
        async for raw in ws:
            with contextlib.suppress(ValueError):
                self.client_messages[index].append(json.loads(raw))
