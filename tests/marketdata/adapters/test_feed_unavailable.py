"""A venue that never answers is reported (FeedUnavailable); one that answered is reconnected."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from marketdata.adapters.base import BackoffExhausted, ExponentialBackoff, FeedUnavailable
from marketdata.adapters.coinbase import CoinbaseFeed
from marketdata.adapters.polygon import PolygonCryptoStream
from marketdata.engine.events import Trade
from tests.fakes import FakePolygonServer, Script, trade_frames
from tests.fakes.streams import take

pytestmark = pytest.mark.timeout(10)


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def backoff(max_attempts: int | None = None) -> ExponentialBackoff:
    return ExponentialBackoff(
        initial=0.01, max_attempts=max_attempts, rng=random.Random(5), sleep=no_sleep
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_a_venue_never_reached_raises_feed_unavailable_after_the_bounded_attempts():
    url = f"ws://127.0.0.1:{free_port()}/"
    feed = CoinbaseFeed(["BTC-USD"], url=url, backoff=backoff(), max_connect_failures=3)
    with pytest.raises(FeedUnavailable, match=r"no connection to .* after 3 attempts"):
        await anext(feed.events())
    assert feed.stats.reconnects == 2 and feed.stats.received == 0


async def test_a_feed_that_had_data_keeps_reconnecting_past_that_bound():
    server = FakePolygonServer(Script(frames=trade_frames(3)))
    await server.start()
    feed = PolygonCryptoStream(
        "test-key", ["BTC-USD"], ("XT",), url=server.url, backoff=backoff(6), max_connect_failures=2
    )
    events = feed.events()
    try:
        assert all(isinstance(e, Trade) for e in await take(events, 3))
        await server.stop()  # the venue goes away for good after it had sent data
        with pytest.raises(BackoffExhausted):  # its own retry budget, not FeedUnavailable
            async with asyncio.timeout(8):
                while True:
                    await anext(events)
        assert feed.stats.reconnects >= 6
    finally:
        await feed.close()
        await events.aclose()
