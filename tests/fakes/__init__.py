"""Local fake venues speaking the real wire protocols, for adapter tests, integration and benches.

Every fake is an async context manager bound to 127.0.0.1 on a random free port; use ``.url``::

    async with FakePolygonServer(Script(frames=trade_frames(4000), rate=2000)) as server:
        stream = PolygonCryptoStream("test-key", ["BTC-USD"], ("XT",), url=server.url)
        # server.sent_at[i] (time.monotonic) pairs with the i-th data frame the client receives

WebSocket fakes share ``Script`` (frames, drop_after + replay_overlap, stall_after, rate).
"""

from tests.fakes._http import FakeHttpServer
from tests.fakes._ws import FakeWebSocketServer, Script
from tests.fakes.binance import (
    FakeBinanceRest,
    FakeBinanceServer,
    binance_kline,
    binance_spot_market,
    binance_trade,
    kline_rows,
)
from tests.fakes.coinbase import FakeCoinbaseServer, l2, lost_l2, match, raw, ticker
from tests.fakes.polygon_rest import FakePolygonRest, aggregate_rows
from tests.fakes.polygon_ws import (
    FakePolygonServer,
    polygon_bar,
    polygon_book,
    polygon_quote,
    polygon_trade,
    status,
    trade_frames,
)
from tests.fakes.streams import streaming, take, until

__all__ = [
    "FakeBinanceRest",
    "FakeBinanceServer",
    "FakeCoinbaseServer",
    "FakeHttpServer",
    "FakePolygonRest",
    "FakePolygonServer",
    "FakeWebSocketServer",
    "Script",
    "aggregate_rows",
    "binance_kline",
    "binance_spot_market",
    "binance_trade",
    "kline_rows",
    "l2",
    "lost_l2",
    "match",
    "polygon_bar",
    "polygon_book",
    "polygon_quote",
    "polygon_trade",
    "raw",
    "status",
    "streaming",
    "take",
    "ticker",
    "trade_frames",
    "until",
]
