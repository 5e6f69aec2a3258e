"""Helpers for the stream protocol's tests: a schema-checking client and small fixtures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema
import uvicorn
from channels.testing import WebsocketCommunicator

from rrr_site.asgi import application

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "websocket.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def check(message: dict) -> dict:
    """Fail unless ``message`` matches docs/websocket.schema.json; return it."""
    error = jsonschema.exceptions.best_match(VALIDATOR.iter_errors(message))
    assert error is None, f"{message} breaks the schema at {list(error.path)}: {error.message}"
    return message


class StreamClient:
    """A test client of ``/ws/v1/stream`` that validates every message it receives."""

    def __init__(self, query: str = "", headers: list | None = None) -> None:
        path = "/ws/v1/stream" + (f"?{query}" if query else "")
        self.comm = WebsocketCommunicator(application, path, headers=headers or [])

    async def open(self) -> StreamClient:
        connected, _ = await self.comm.connect(timeout=5)
        assert connected
        return self

    async def send(self, message: dict) -> None:
        await self.comm.send_json_to(message)

    async def receive(self, timeout: float = 5) -> dict:
        return check(await self.comm.receive_json_from(timeout=timeout))

    async def subscribe(self, *channels: str, request_id: int = 1) -> dict:
        """Subscribe; return the ack (snapshots follow)."""
        await self.send({"op": "subscribe", "channels": list(channels), "id": request_id})
        ack = await self.receive()
        assert ack["type"] == "ack" and ack["id"] == request_id, ack
        return ack

    async def close_code(self) -> int:
        """Return the close code the server sends next."""
        message = await self.comm.receive_output(timeout=5)
        assert message["type"] == "websocket.close", message
        return message["code"]

    async def nothing_more(self) -> bool:
        return await self.comm.receive_nothing(timeout=0.2)

    async def close(self) -> None:
        await self.comm.disconnect()


class QuietServer(uvicorn.Server):
    """uvicorn in the test's loop, leaving pytest's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


@contextlib.asynccontextmanager
async def serving(**options) -> AsyncIterator[int]:
    """Serve the ASGI app with uvicorn on a free loopback port (real sockets); yield the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **options
    )
    server = QuietServer(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        await task
