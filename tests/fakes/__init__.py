"""Local fake venues speaking the real wire protocols, for adapter tests, integration and benches.

Every fake is an async context manager bound to 127.0.0.1 on a random free port::

    async with FakePolygonServer(Script(frames=trade_frames(100), rate=2000)) as server:
        stream = PolygonCryptoStream("test-key", ["BTC-USD"], url=server.url)
"""

from tests.fakes._ws import FakeWebSocketServer, Script
from tests.fakes.polygon_ws import (
    FakePolygonServer,
    polygon_bar,
    polygon_book,
    polygon_quote,
    polygon_trade,
    status,
    trade_frames,
)
from tests.fakes.streams import streaming, take

__all__ = [
    "FakePolygonServer",
    "FakeWebSocketServer",
    "Script",
    "polygon_bar",
    "polygon_book",
    "polygon_quote",
    "polygon_trade",
    "status",
    "streaming",
    "take",
    "trade_frames",
]
