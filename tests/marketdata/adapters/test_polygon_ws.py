"""PolygonCryptoStream against a local server speaking Polygon's crypto WebSocket protocol."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from marketdata.adapters.base import (
    BackoffExhausted,
    ExponentialBackoff,
    FeedAuthError,
    Malformed,
    with_receive_time,
)
from marketdata.adapters.polygon import PolygonCryptoStream
from marketdata.engine.events import Bar, BookSnapshot, Quote, Side, Trade
from tests.fakes import (
    FakePolygonServer,
    Script,
    polygon_bar,
    polygon_book,
    polygon_quote,
    polygon_trade,
    streaming,
    take,
    trade_frames,
)
from tests.fakes.polygon_ws import BASE_MS

pytestmark = pytest.mark.timeout(5)


class RecordingSleep:
    """Injected sleep: record back-off delays without waiting for them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def fast_backoff(sleep: RecordingSleep | None = None, max_attempts: int = 5) -> ExponentialBackoff:
    return ExponentialBackoff(
        initial=0.01,
        maximum=0.05,
        max_attempts=max_attempts,
        rng=random.Random(7),
        sleep=sleep or RecordingSleep(),
    )


def stream_for(server: FakePolygonServer, key: str = "test-key", **kwargs) -> PolygonCryptoStream:
    kwargs.setdefault("backoff", fast_backoff())
    return PolygonCryptoStream(key, ["BTC-USD"], ("XT", "XQ", "XA"), url=server.url, **kwargs)


def assert_accounted(stream: PolygonCryptoStream) -> None:
    assert stream.stats.received == stream.stats.accounted()


async def test_auth_subscribe_and_multi_event_frames() -> None:
    frames = [
        [polygon_trade(50_000.5, 0.25, BASE_MS + 123, i="t1", c=[1]), polygon_quote()],
        [polygon_bar(BASE_MS), polygon_trade(50_001.0, 0.5, BASE_MS + 500, i="t2", c=[2])],
    ]
    async with FakePolygonServer(Script(frames=frames)) as server:
        stream = stream_for(server)
        async with streaming(stream) as events:
            got = await take(events, 4)
    trade, quote, bar, trade2 = got
    assert trade == Trade(
        symbol="BTC-USD",
        ts=datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC),
        price=50_000.5,
        size=0.25,
        venue="polygon",
        trade_id="1:t1",
        side=Side.SELL,
    )
    assert trade2.side is Side.BUY
    assert isinstance(quote, Quote) and (quote.bid, quote.ask, quote.ask_size) == (
        49_999.0,
        50_001.0,
        2.0,
    )
    assert isinstance(bar, Bar) and bar.timeframe == "1m" and bar.trade_count == 24
    assert bar.ts == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert server.client_messages[0] == [
        {"action": "auth", "params": "test-key"},
        {"action": "subscribe", "params": "XT.BTC-USD,XQ.BTC-USD,XA.BTC-USD"},
    ]
    assert stream.stats.frames == 1 + 1 + 3 + 2  # connected, auth_success, 3 acks, 2 data frames
    assert stream.stats.parsed == 4 and stream.stats.control == 5
    assert_accounted(stream)


async def test_auth_failure_is_fatal_without_reconnect_storm() -> None:
    sleep = RecordingSleep()
    async with FakePolygonServer(Script(frames=trade_frames(3))) as server:
        stream = stream_for(server, key="wrong-key", backoff=fast_backoff(sleep, max_attempts=50))
        async with streaming(stream) as events:
            with pytest.raises(FeedAuthError, match="authentication failed"):
                await take(events, 1)
        await asyncio.sleep(0.05)  # give a (buggy) reconnect loop the chance to show itself
        assert server.connections == 1
        assert server.auth_attempts == 1
    assert stream.stats.connects == 1 and stream.stats.reconnects == 0
    assert sleep.delays == []


async def test_disconnect_reconnects_reauths_resubscribes_without_duplicates() -> None:
    sleep = RecordingSleep()
    script = Script(frames=trade_frames(10, per_frame=2), drop_after=4, replay_overlap=3)
    async with FakePolygonServer(script) as server:
        stream = stream_for(server, backoff=fast_backoff(sleep))
        async with streaming(stream) as events:
            got = await take(events, 20)
        assert server.connections == 2
        assert server.auth_attempts == 2
        assert (
            server.subscriptions[0]
            == server.subscriptions[1]
            == {
                "XT.BTC-USD",
                "XQ.BTC-USD",
                "XA.BTC-USD",
            }
        )
    assert [t.trade_id for t in got] == [f"1:{n}" for n in range(20)]
    assert stream.stats.duplicates == 6  # three replayed frames of two trades
    assert stream.stats.reconnects == 1 and stream.stats.connects == 2
    assert len(sleep.delays) == 1 and 0.005 <= sleep.delays[0] <= 0.01
    assert_accounted(stream)


async def test_idle_timeout_reconnects() -> None:
    script = Script(frames=trade_frames(4), stall_after=2)
    async with FakePolygonServer(script) as server:
        stream = stream_for(server, idle_timeout=0.2)
        async with streaming(stream) as events:
            got = await take(events, 4)
        assert server.connections == 2
    assert [t.trade_id for t in got] == ["1:0", "1:1", "1:2", "1:3"]
    assert stream.stats.reconnects == 1


async def test_malformed_frames_are_quarantined_and_the_stream_continues() -> None:
    good = [polygon_trade(100.0, 1.0, BASE_MS + n, i=str(n)) for n in range(4)]
    negative = polygon_trade(-5.0, 1.0, BASE_MS, i="neg")
    zero = polygon_trade(0.0, 1.0, BASE_MS, i="zero")
    text_price = polygon_trade(100.0, 1.0, BASE_MS, i="txt") | {"p": "abc"}
    missing = {"ev": "XT", "pair": "BTC-USD", "t": BASE_MS}
    frames = [
        [good[0]],
        "{not json",
        '{"ev": "XT"}',
        [negative, good[1]],
        [zero, text_price, missing, good[2]],
        [42, good[3]],
    ]
    async with FakePolygonServer(Script(frames=frames)) as server:
        stream = stream_for(server)
        async with streaming(stream) as events:
            got = await take(events, 11)
    kinds = [type(e).__name__ for e in got]
    assert kinds == ["Trade", "Malformed", "Malformed", "Malformed", "Trade"] + [
        "Malformed",
        "Malformed",
        "Malformed",
        "Trade",
        "Malformed",
        "Trade",
    ]
    bad = [e for e in got if isinstance(e, Malformed)]
    assert all(e.source == "polygon" and e.raw for e in bad)
    reasons = [e.reason for e in bad]
    assert "invalid JSON" in reasons[0]
    assert "not a JSON array" in reasons[1]
    assert "'p' must be > 0" in reasons[2] and "'p' must be > 0" in reasons[3]
    assert "not numeric" in reasons[4]
    assert "missing field 'p'" in reasons[5]
    assert bad[0].raw == "{not json"
    assert stream.stats.malformed == 7 and stream.stats.parsed == 4
    assert_accounted(stream)


async def test_trades_without_ids_are_deduped_by_content_across_reconnect() -> None:
    frames = [[polygon_trade(100.0 + n, 1.0, BASE_MS + n)] for n in range(5)]
    script = Script(frames=frames, drop_after=3, replay_overlap=2)
    async with FakePolygonServer(script) as server:
        stream = stream_for(server)
        async with streaming(stream) as events:
            got = await take(events, 5)
    assert [t.price for t in got] == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert stream.stats.duplicates == 2


async def test_second_bars_and_level2_books() -> None:
    book = polygon_book(
        bids=[(99.0, 1.0), (100.0, 2.0), (98.0, 0.0)], asks=[(102.0, 1.0), (101.0, 3.0)]
    )
    frames = [[polygon_bar(BASE_MS, ev="XAS"), book]]
    async with FakePolygonServer(Script(frames=frames)) as server:
        stream = PolygonCryptoStream(
            "test-key", ["BTC-USD"], ("XAS", "XL2"), url=server.url, backoff=fast_backoff()
        )
        async with streaming(stream) as events:
            bar, snapshot = await take(events, 2)
    assert isinstance(bar, Bar) and bar.timeframe == "1s"
    assert isinstance(snapshot, BookSnapshot)
    assert snapshot.bids == ((100.0, 2.0), (99.0, 1.0))  # best first, empty level dropped
    assert snapshot.asks == ((101.0, 3.0), (102.0, 1.0))


async def test_receive_time_side_channel() -> None:
    frames = trade_frames(3, per_frame=2)
    seen: list[tuple[float, int]] = []
    ticks = iter(range(1000, 2000))

    async with FakePolygonServer(Script(frames=frames)) as server:
        stream = stream_for(
            server,
            on_frame=lambda at, evs: seen.append((at, len(evs))),
            clock=lambda: float(next(ticks)),
        )
        pairs = with_receive_time(stream)
        try:
            got = await take(pairs, 6)
        finally:
            await stream.close()
            await pairs.aclose()
    data_frames = [(at, n) for at, n in seen if n]
    assert [n for _, n in data_frames] == [2, 2, 2]
    # Both trades of one frame share that frame's receive time, in frame order.
    assert [at for _, at in got] == [at for at, _ in data_frames for _ in range(2)]


async def test_close_ends_the_iterator() -> None:
    async with FakePolygonServer(Script(frames=trade_frames(1))) as server:
        stream = stream_for(server)
        events = stream.events()
        await take(events, 1)
        pending = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.01)
        await asyncio.wait_for(stream.close(), 1)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, 1)
    assert stream.stats.reconnects == 0


def test_constructor_rejects_unknown_channels_and_hides_key() -> None:
    with pytest.raises(ValueError, match="XZ"):
        PolygonCryptoStream("k", ["BTC-USD"], ("XT", "XZ"))
    stream = PolygonCryptoStream("secret-key", ["BTC-USD", "ETH-USD"], ("XT",))
    assert "secret-key" not in repr(stream)
    assert stream.subscription_params == "XT.BTC-USD,XT.ETH-USD"


async def test_unreachable_venue_backs_off_exponentially_then_gives_up() -> None:
    async with FakePolygonServer() as server:
        url = server.url  # the port is free again once the server stops
    sleep = RecordingSleep()
    stream = PolygonCryptoStream(
        "test-key", ["BTC-USD"], url=url, backoff=fast_backoff(sleep, max_attempts=3)
    )
    async with streaming(stream) as events:
        with pytest.raises(BackoffExhausted):
            await take(events, 1)
    assert stream.stats.connects == 0 and stream.stats.reconnects == 4
    assert len(sleep.delays) == 3
    assert sleep.delays[0] < sleep.delays[1] < sleep.delays[2] <= 0.05


async def test_close_interrupts_a_reconnect_backoff() -> None:
    async with FakePolygonServer() as server:
        url = server.url
    slow = ExponentialBackoff(initial=30, maximum=60, rng=random.Random(1))
    stream = PolygonCryptoStream("test-key", ["BTC-USD"], url=url, backoff=slow)
    events = stream.events()
    pending = asyncio.ensure_future(anext(events))
    async with asyncio.timeout(2):
        while stream.stats.reconnects == 0:
            await asyncio.sleep(0.005)
        await stream.close()
        with pytest.raises(StopAsyncIteration):
            await pending
