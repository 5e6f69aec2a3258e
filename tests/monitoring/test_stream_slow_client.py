"""A client that stops reading slows nobody: a real uvicorn server, real sockets.

The slow client's socket fills, its outbox conflates market data (and says so), orders still all
arrive; meanwhile a fast client gets every message. When undroppable messages overflow, the slow
connection is closed with 4429 so the client reconnects and starts again from snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import pytest
import websockets
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from marketdata.models import Symbol
from monitoring.realtime import apublish
from monitoring.stream import StreamConsumer
from monitoring.stream_socket import BoundedWebSocketProtocol
from tests.factories import AccountFactory, OrderFactory, SymbolFactory, UserFactory
from tests.monitoring.stream_helpers import check
from tests.monitoring.stream_helpers import serving as serve_app

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures(
        "close_thread_connections", "fresh_channel_layer", "fast_password_hashing"
    ),
]
CHANNELS = ["market.BTC-USD", "orders"]
# Big books (~8 KB a message, in long prices: few objects to copy): the loopback socket's send
# buffer autotunes to a few MB, and a stalled client's buffers must fill before its outbox backs up.
LEVELS = [[f"{50000 + i}." + "5" * 400, "0.25"] for i in range(10)]
BOOKS = 1000


@contextlib.asynccontextmanager
async def serving():
    """Serve the ASGI app on a free loopback port; yield the stream URL without credentials."""
    # No keepalive pings: a stalled client would otherwise be dropped for missing its pongs.
    async with serve_app(ws_ping_interval=None) as port:
        yield f"ws://127.0.0.1:{port}/ws/v1/stream"


@database_sync_to_async
def viewer_token() -> str:
    SymbolFactory(name="BTC-USD")
    user = UserFactory(username="reader")
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    AccountFactory(name="paper").members.add(user)
    return Token.objects.create(user=user).key


def stalled_socket(url: str) -> socket.socket:
    """A connected socket with a tiny receive buffer: a client that stops reading fills it."""
    port = int(url.split(":")[2].split("/")[0])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return sock


async def open_client(url: str, sock: socket.socket | None = None):
    # Uncompressed, so the bytes on the wire are the messages' (deflate shrinks repeated books).
    ws = await websockets.connect(url, sock=sock, max_queue=1, open_timeout=10,
                                  ping_interval=None, compression=None)
    await ws.send(json.dumps({"op": "subscribe", "channels": CHANNELS, "id": 1}))
    first = [check(json.loads(await ws.recv())) for _ in range(3)]
    assert [m["type"] for m in first] == ["ack", "snapshot", "snapshot"]
    return ws


def book(n: int) -> dict:
    return {"symbol": "BTC-USD", "ts": f"2026-01-05T00:{n // 60:02d}:{n % 60:02d}+00:00",
            "bids": LEVELS, "asks": LEVELS}


def order(n: int) -> dict:
    return {"account": "paper", "client_order_id": f"c{n}", "symbol": "BTC-USD", "side": "buy",
            "type": "market", "quantity": "0.5", "status": "open", "filled_quantity": "0"}


async def publish_paced(fast, kind: str, payloads: list[dict], channel: str) -> list[dict]:
    """Publish each payload; every 20, wait until the fast client has them (never the slow)."""
    layer, got = get_channel_layer(), []
    for start in range(0, len(payloads), 20):
        batch = payloads[start:start + 20]
        for data in batch:
            await apublish(layer, channel, kind, data)
        for _ in batch:
            got.append(json.loads(await asyncio.wait_for(fast.recv(), 10)))
    for message in got[::97]:  # a sample: validating thousands of books costs seconds
        check(message)
    return got


async def drain(ws, until) -> list[dict]:
    """Read the slow client's backlog until ``until(message)``."""
    out = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] != "book" or len(out) % 97 == 0:  # books: a sample (they are big)
            check(message)
        out.append(message)
        if until(message):
            return out


async def test_a_stalled_client_is_conflated_while_others_get_everything():
    token = await viewer_token()
    async with serving() as url:
        url = f"{url}?token={token}"
        fast = await open_client(url)
        slow = await open_client(url, stalled_socket(url))
        slow.transport.pause_reading()  # from here on it reads nothing
        books = await publish_paced(fast, "book", [book(n) for n in range(BOOKS)],
                                    "market.BTC-USD")
        orders = await publish_paced(fast, "order", [order(n) for n in range(100)], "orders")
        # The fast client missed nothing and saw no conflation.
        assert [m["seq"] for m in books] == list(range(2, BOOKS + 2))
        assert [m["data"]["client_order_id"] for m in orders] == [f"c{n}" for n in range(100)]
        # The slow one: market data conflated and told; every order there, in sequence.
        slow.transport.resume_reading()
        # Orders go before market data; the newest book is never conflated away: both arrive.
        last_book = book(BOOKS - 1)["ts"]
        seen: set[str] = set()

        def both_arrived(m: dict) -> bool:
            if m["data"].get("client_order_id") == "c99" or m["data"].get("ts") == last_book:
                seen.add(m["channel"])
            return len(seen) == 2

        backlog = await drain(slow, both_arrived)
        market = [m for m in backlog if m["channel"] == "market.BTC-USD"]
        told = sum(m["data"]["dropped"] for m in market if m["type"] == "conflated")
        seqs = [m["seq"] for m in market]
        assert told > 0, "the stalled socket never backed up"
        assert seqs == sorted(seqs) and seqs[-1] - 1 - len(seqs) == told  # gaps are all told
        assert [m["seq"] for m in backlog if m["channel"] == "orders"] == list(range(2, 102))
        await fast.close()
        await slow.close()


async def test_overflowing_undroppable_messages_close_the_slow_client_4429(monkeypatch):
    monkeypatch.setattr(StreamConsumer, "RELIABLE_LIMIT", 200)
    token = await viewer_token()
    async with serving() as url:
        url = f"{url}?token={token}"
        fast = await open_client(url)
        slow = await open_client(url, stalled_socket(url))
        slow.transport.pause_reading()
        big = {**order(0), "reason": "x" * 8_000}
        await publish_paced(fast, "order", [dict(big, client_order_id=f"c{n}")
                                            for n in range(1000)], "orders")
        slow.transport.resume_reading()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(slow.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        await fast.send(json.dumps({"op": "ping", "id": 9}))
        assert json.loads(await fast.recv())["type"] == "pong"  # the other client is untouched
        await fast.close()


@database_sync_to_async
def open_orders(n: int) -> list[str]:
    """Store ``n`` open orders of the account "paper"; return their client order ids."""
    from trading.models import Account

    paper = Account.objects.get(name="paper")
    btc = Symbol.objects.get(name="BTC-USD")
    rows = [OrderFactory(account=paper, symbol=btc) for _ in range(n)]
    return [str(o.client_order_id) for o in rows]


async def test_a_client_closed_4429_reconnects_and_its_snapshot_holds_every_order(monkeypatch):
    monkeypatch.setattr(StreamConsumer, "RELIABLE_LIMIT", 200)
    token = await viewer_token()
    ids = await open_orders(1000)
    async with serving() as url:
        url = f"{url}?token={token}"
        fast = await open_client(url)
        slow = await open_client(url, stalled_socket(url))
        slow.transport.pause_reading()
        notices = [{**order(0), "client_order_id": i, "reason": "x" * 8_000} for i in ids]
        await publish_paced(fast, "order", notices, "orders")
        slow.transport.resume_reading()
        seen = []
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                message = json.loads(await asyncio.wait_for(slow.recv(), 10))
                if message["type"] == "order":
                    seen.append(message["data"]["client_order_id"])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        assert len(seen) < len(ids)  # it missed some order notices...
        # ...reconnects as docs/websocket.md says and subscribes again...
        again = await websockets.connect(url, open_timeout=10, max_size=2**24)
        await again.send(json.dumps({"op": "subscribe", "channels": ["orders"], "id": 2}))
        ack = check(json.loads(await asyncio.wait_for(again.recv(), 10)))
        snapshot = check(json.loads(await asyncio.wait_for(again.recv(), 10)))
        assert ack["type"] == "ack" and snapshot["type"] == "snapshot"
        # ...and the snapshot holds every order it missed, in its state now.
        assert set(ids) - set(seen) <= {o["client_order_id"] for o in snapshot["data"]["open"]}
        for ws in (fast, again):
            await ws.close()


async def books_before_the_order(protocol: type | None) -> tuple[int, int]:
    """Stall a client, publish books then one order; return the books it reads before the order.

    And the drops told: market data the outbox replaced while the socket was full (told after
    the order: orders go first).
    """
    token = await viewer_token()
    options = {"ws": protocol} if protocol is not None else {}
    async with serve_app(ws_ping_interval=None, **options) as port:
        url = f"ws://127.0.0.1:{port}/ws/v1/stream?token={token}"
        fast = await open_client(url)
        slow = await open_client(url, stalled_socket(url))
        slow.transport.pause_reading()
        await publish_paced(fast, "book", [book(n) for n in range(BOOKS)], "market.BTC-USD")
        await publish_paced(fast, "order", [order(7)], "orders")
        slow.transport.resume_reading()
        last_book, seen = book(BOOKS - 1)["ts"], set()

        def both_arrived(m: dict) -> bool:
            if m["type"] == "order" or m["data"].get("ts") == last_book:
                seen.add(m["type"])
            return len(seen) == 2

        got = await drain(slow, both_arrived)
        before = got[: [m["type"] for m in got].index("order")]
        books = [m for m in before if m["type"] == "book"]
        told = sum(m["data"]["dropped"] for m in got if m["type"] == "conflated")
        await fast.close()
        await slow.close()
    return len(books), told


async def test_a_slow_readers_order_notice_waits_behind_little_market_data():
    """The embedded server caps each socket's buffers: the backlog stays in the outbox.

    There orders go first and market data conflates; what the socket already holds can do
    neither. With uvicorn's defaults the loopback socket's send buffer grew to megabytes and
    the order came after hundreds of stale books (the soak's notices: seconds late).
    """
    from trading.management.commands.runtrader import _embedded_server

    config = _embedded_server("127.0.0.1:8765").config
    assert config.ws is BoundedWebSocketProtocol
    assert config.ws_per_message_deflate is False  # zlib per message and client: engine CPU
    books, told = await books_before_the_order(BoundedWebSocketProtocol)
    # ~8 KB books: 64 KiB of socket and 16 KiB of transport hold about ten.
    assert books <= 16, f"{books} books were queued ahead of the order notice"
    assert told > 0  # meanwhile the outbox conflated the books it held, and said so
