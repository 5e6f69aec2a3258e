"""CoinbaseFeed against a local server speaking the Coinbase Exchange WebSocket feed."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.adapters.base import ExponentialBackoff, FeedProtocolError, Malformed
from marketdata.adapters.coinbase import CoinbaseFeed, LocalBook
from marketdata.engine.events import BookSnapshot, Quote, Side, Trade
from tests.fakes.coinbase import FakeCoinbaseServer, l2, lost_l2, match, raw, ticker
from tests.fakes.streams import streaming, take, until

pytestmark = pytest.mark.timeout(5)

FIXED_NOW = datetime(2024, 1, 1, tzinfo=UTC)


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def feed_for(server: FakeCoinbaseServer, **kwargs) -> CoinbaseFeed:
    backoff = ExponentialBackoff(initial=0.01, max_attempts=3, rng=random.Random(1), sleep=no_sleep)
    kwargs.setdefault("backoff", backoff)
    return CoinbaseFeed(["BTC-USD"], url=server.url, now=lambda: FIXED_NOW, **kwargs)


def in_sync(server: FakeCoinbaseServer):
    """Return a predicate: a book event equal to the venue's book once the script is done."""

    def check(event: object) -> bool:
        return (
            isinstance(event, BookSnapshot)
            and server.cursor == len(server.steps)
            and (event.bids, event.asks) == server.book(event.symbol)
        )

    return check


def assert_accounted(feed: CoinbaseFeed) -> None:
    assert feed.stats.received == feed.stats.accounted()


async def test_snapshot_matches_and_ticker() -> None:
    steps = [
        match("BTC-USD", 100.5, 0.2, maker_side="buy"),
        match("BTC-USD", 101.0, 0.3, maker_side="sell"),
        ticker("BTC-USD", 100.0, 101.0, bid_size=1.0, ask_size=1.5),
    ]
    async with FakeCoinbaseServer(steps) as server:
        feed = feed_for(server)
        async with streaming(feed) as events:
            snapshot, sold, bought, quote = await take(events, 4)
        assert server.client_messages[0][0] == {
            "type": "subscribe",
            "product_ids": ["BTC-USD"],
            "channels": ["matches", "ticker", "level2_batch", "heartbeat"],
        }
    assert snapshot == BookSnapshot(
        symbol="BTC-USD",
        ts=FIXED_NOW,
        bids=((100.0, 1.0), (99.0, 2.0)),
        asks=((101.0, 1.5), (102.0, 3.0)),
        venue="coinbase",
        sequence=100,
    )
    assert isinstance(sold, Trade) and sold.side is Side.SELL  # maker bought: taker sold
    assert isinstance(bought, Trade) and bought.side is Side.BUY
    assert (sold.price, sold.size, sold.trade_id) == (100.5, 0.2, "901")
    assert sold.ts == datetime(2023, 11, 14, 22, 13, 20, 1000, tzinfo=UTC)
    assert isinstance(quote, Quote) and (quote.bid, quote.ask, quote.ask_size) == (
        100.0,
        101.0,
        1.5,
    )
    assert feed.stats.gaps == 0  # order sequences skip on these channels: not a gap
    assert_accounted(feed)


async def test_sequence_gap_forces_a_resync_and_the_book_converges() -> None:
    steps = [
        l2("BTC-USD", ("buy", 100.0, 1.25)),
        lost_l2("BTC-USD", ("sell", 101.0, 0)),  # the client never sees this
        l2("BTC-USD", ("buy", 98.0, 4.0)),
        l2("BTC-USD", ("sell", 103.0, 2.0)),
        l2("BTC-USD", ("buy", 99.5, 1.0)),
    ]
    async with FakeCoinbaseServer(steps) as server:
        feed = feed_for(server)
        async with streaming(feed) as events:
            got = await until(events, in_sync(server))
        commands = server.client_messages[0][1:3]
        assert server.snapshots_sent == 2
    assert commands == [
        {"type": "unsubscribe", "product_ids": ["BTC-USD"], "channels": ["level2_batch"]},
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["level2_batch"]},
    ]
    books = [e for e in got if isinstance(e, BookSnapshot)]
    assert books[1].bids[0] == (100.0, 1.25) and books[1].sequence == 101
    # No book built on top of the gap was ever emitted: ask 101.0 was deleted by the lost update.
    assert all((101.0, 1.5) not in b.asks for b in books[2:])
    assert feed.stats.gaps == 1 and feed.stats.resyncs == 1
    assert_accounted(feed)


async def test_books_without_sequence_apply_updates_in_order() -> None:
    steps = [l2("BTC-USD", ("buy", 100.0, 0)), l2("BTC-USD", ("sell", 100.5, 0.5))]
    async with FakeCoinbaseServer(steps, l2_sequence=False) as server:
        feed = feed_for(server, depth=1)
        async with streaming(feed) as events:
            _, first, second = await take(events, 3)
    assert first.bids == ((99.0, 2.0),) and first.sequence is None
    assert second.asks == ((100.5, 0.5),)
    assert feed.stats.resyncs == 0


async def test_reconnect_gets_a_fresh_snapshot_and_drops_replayed_trades() -> None:
    steps = [
        match("BTC-USD", 100.0, 1.0, "buy"),
        l2("BTC-USD", ("buy", 100.0, 3.0)),
        match("BTC-USD", 100.1, 1.0, "sell"),
        l2("BTC-USD", ("sell", 101.0, 0)),
        match("BTC-USD", 100.2, 1.0, "buy"),
    ]
    async with FakeCoinbaseServer(steps, drop_after=3) as server:
        feed = feed_for(server)
        async with streaming(feed) as events:
            got = await until(events, lambda e: isinstance(e, Trade) and e.trade_id == "903")
        assert server.connections == 2
    trades = [e.trade_id for e in got if isinstance(e, Trade)]
    assert trades == ["901", "902", "903"]
    assert feed.stats.duplicates == 1  # the last_match resent on the new subscription
    assert feed.stats.reconnects == 1
    snapshots = [e for e in got if isinstance(e, BookSnapshot) and e.sequence == 101]
    assert len(snapshots) == 2  # the update on connection one, then the fresh snapshot
    assert_accounted(feed)


async def test_malformed_messages_are_quarantined_and_bad_updates_resync() -> None:
    steps = [
        raw("not json"),
        raw('{"type": "match", "product_id": "BTC-USD", "price": "-1"}'),
        raw('{"type": "l2update", "product_id": "BTC-USD", "changes": [["buy", "x", "1"]]}'),
        match("BTC-USD", 100.0, 1.0, "sell"),
    ]
    async with FakeCoinbaseServer(steps) as server:
        feed = feed_for(server)
        async with streaming(feed) as events:
            got = await until(events, lambda e: isinstance(e, Trade))
    bad = [e for e in got if isinstance(e, Malformed)]
    assert len(bad) == 3 and all(e.source == "coinbase" for e in bad)
    assert "invalid JSON" in bad[0].reason
    assert feed.stats.resyncs == 1  # the unparseable book update invalidated the book
    assert_accounted(feed)


async def test_error_message_is_fatal() -> None:
    steps = [raw('{"type": "error", "message": "Failed to subscribe", "reason": "bad product"}')]
    async with FakeCoinbaseServer(steps) as server:
        feed = feed_for(server)
        async with streaming(feed) as events:
            with pytest.raises(FeedProtocolError, match="bad product"):
                await take(events, 2)
        assert server.connections == 1


levels = st.dictionaries(
    st.integers(min_value=1, max_value=60).map(float),
    st.integers(min_value=1, max_value=5).map(float),
    max_size=20,
)
changes = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.integers(min_value=1, max_value=60).map(float),
        st.integers(min_value=0, max_value=3).map(float),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(bids=levels, asks=levels, updates=changes, depth=st.integers(min_value=1, max_value=12))
def test_local_book_top_matches_a_reference_book(bids, asks, updates, depth) -> None:
    book = LocalBook()
    book.load(bids.items(), asks.items())
    book.apply(updates)
    reference = {"buy": dict(bids), "sell": dict(asks)}
    for side, price, size in updates:
        if size == 0:
            reference[side].pop(price, None)
        else:
            reference[side][price] = size
    top_bids, top_asks = book.top(depth)
    assert top_bids == tuple(sorted(reference["buy"].items(), reverse=True)[:depth])
    assert top_asks == tuple(sorted(reference["sell"].items())[:depth])
    assert all(size > 0 for _, size in top_bids + top_asks)
