"""The per-process stream hub: one layer membership per channel, shared encoding, refreshed joins.

Runs on whichever channel layer the settings give (in-process, or Redis with ``REDIS_URL``).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

import monitoring.stream_hub as stream_hub
from monitoring.stream import StreamConsumer
from monitoring.stream_hub import StreamHub
from tests.factories import AccountFactory
from tests.monitoring.stream_helpers import StreamClient
from tests.monitoring.test_stream import T0, market_world, order, publish, token_of, user_with

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures(
        "close_thread_connections", "fresh_channel_layer", "fast_password_hashing"
    ),
]
QUOTE = {"symbol": "BTC-USD", "ts": T0.isoformat(), "bid": "1", "bid_size": "1", "ask": "2",
         "ask_size": "1"}  # fmt: skip


async def members_of(group: str) -> dict[str, float]:
    """Return the layer's members of ``group`` with the time each joined."""
    layer = get_channel_layer()
    if hasattr(layer, "groups"):  # the in-process layer
        return dict(layer.groups.get(group, {}))
    connection = layer.connection(layer.consistent_hash(group))
    rows = await connection.zrange(layer._group_key(group), 0, -1, withscores=True)
    return {name.decode(): score for name, score in rows}


async def backdate(group: str, channel: str, joined: float) -> None:
    """Make the layer believe ``channel`` joined ``group`` at ``joined`` (epoch seconds)."""
    layer = get_channel_layer()
    if hasattr(layer, "groups"):
        layer.groups[group][channel] = joined
        layer._swept_at = float("-inf")  # sweep expired memberships at the next send
        return
    connection = layer.connection(layer.consistent_hash(group))
    await connection.zadd(layer._group_key(group), {channel: joined})


async def quote_client(name: str) -> StreamClient:
    client = await StreamClient(f"token={await token_of(await user_with(name))}").open()
    await client.subscribe("market.BTC-USD")
    assert (await client.receive())["type"] == "snapshot"
    return client


async def test_clients_share_one_membership_and_keep_their_own_seq():
    await market_world()
    before = set(await members_of("market.BTC-USD"))  # on Redis: other runs' leftovers
    first = await quote_client("ann")
    await publish("market.BTC-USD", "quote", QUOTE)
    await publish("market.BTC-USD", "quote", QUOTE)
    assert [(await first.receive())["seq"] for _ in "ab"] == [2, 3]
    late, third = await quote_client("ben"), await quote_client("cid")
    hub = StreamHub.of(get_channel_layer())
    assert set(await members_of("market.BTC-USD")) - before == {hub.channel_name}  # not three
    await publish("market.BTC-USD", "quote", {**QUOTE, "bid": "1.5"})
    got = [await c.receive() for c in (first, late, third)]
    assert [m["seq"] for m in got] == [4, 2, 2]  # the shared frame, each connection's seq
    assert all(m["data"] == {**QUOTE, "bid": "1.5"} for m in got)
    for client in (first, late, third):
        await client.close()
    async with asyncio.timeout(5):  # the last one out leaves the layer's group
        while hub.channel_name in await members_of("market.BTC-USD"):
            await asyncio.sleep(0.02)


async def test_memberships_are_refreshed_before_the_layer_expires_them(monkeypatch):
    await market_world()
    layer = get_channel_layer()
    monkeypatch.setattr(stream_hub, "REJOIN_EVERY", 0.05)
    client = await quote_client("dan")
    hub = StreamHub.of(layer)
    stale = time.time() - layer.group_expiry - 10  # joined longer ago than the layer keeps
    await backdate("market.BTC-USD", hub.channel_name, stale)
    async with asyncio.timeout(5):  # the hub's timer joins again
        while (await members_of("market.BTC-USD")).get(hub.channel_name, stale) <= stale:
            await asyncio.sleep(0.02)
    await publish("market.BTC-USD", "quote", QUOTE)
    assert (await client.receive())["seq"] == 2
    # Without the refresh the layer drops the stale membership and the client hears nothing.
    hub.rejoiner.cancel()
    await backdate("market.BTC-USD", hub.channel_name, stale)
    await publish("market.BTC-USD", "quote", QUOTE)
    assert await client.nothing_more()
    await client.close()


async def test_a_revoked_grant_stops_account_messages_and_closes_4403(monkeypatch):
    monkeypatch.setattr(StreamConsumer, "GRANTS_TTL", 0.0)  # re-read at every account message
    user = await user_with("eve", "viewer", ("paper",))
    await database_sync_to_async(AccountFactory)(name="other")
    client = await StreamClient(f"token={await token_of(user)}").open()
    await client.subscribe("orders")
    assert (await client.receive())["type"] == "snapshot"
    await publish("orders", "order", order("paper", 1))
    assert (await client.receive())["data"]["client_order_id"] == "c1"
    await database_sync_to_async(lambda: user.trading_accounts.clear())()
    await publish("orders", "order", order("paper", 2))
    assert await client.close_code() == 4403  # and c2 never went out


async def test_messages_published_while_the_snapshot_is_read_follow_it(monkeypatch):
    await market_world()
    import monitoring.stream as stream

    real = stream._snapshot

    async def slow_snapshot(channel, accounts):
        data = await real(channel, accounts)
        await publish("market.BTC-USD", "quote", QUOTE)  # arrives while the snapshot is taken
        await asyncio.sleep(0.05)
        return data

    monkeypatch.setattr(stream, "_snapshot", slow_snapshot)
    client = await StreamClient(f"token={await token_of(await user_with('fay'))}").open()
    await client.subscribe("market.BTC-USD")
    got = [await client.receive() for _ in "ab"]
    assert [(m["type"], m["seq"]) for m in got] == [("snapshot", 1), ("quote", 2)]
    await client.close()


async def test_a_broadcast_to_many_is_encoded_once_and_lets_the_loop_run_between_slices(
    monkeypatch,
):
    from monitoring.engine.stream import channel_parse
    from monitoring.realtime import stream_event

    # A clock 2 ms on at each look: the slice's 5 ms are up at the third look (3 x 64 offers).
    ticks = iter(range(0, 10**6, 2))
    monkeypatch.setattr(stream_hub, "clock", lambda: next(ticks) / 1000)
    hub, got = StreamHub.of(get_channel_layer()), []

    class Subscriber:
        def __init__(self, n: int) -> None:
            self.n = n

        def offer(self, channel, event, frame, lost) -> None:
            got.append((self.n, frame))

    count = stream_hub.SLICE * 7 + 1
    hub.members["market.BTC-USD"] = {Subscriber(n): None for n in range(count)}
    hub.parsed["market.BTC-USD"] = channel_parse("market.BTC-USD")
    # An engine tick due meanwhile runs after one slice, not after the whole fan-out.
    asyncio.get_running_loop().call_soon(lambda: got.append(("engine", None)))
    await hub.deliver(stream_event("market.BTC-USD", "quote", QUOTE))
    # Looks at 64, 128, 192 offers: 2, 4, 6 ms after the start - the turn comes at 192.
    assert [n for n, _ in got].index("engine") == stream_hub.SLICE * 3
    offered = [(n, frame) for n, frame in got if n != "engine"]
    assert [n for n, _ in offered] == list(range(count))  # everyone, in order
    assert len({id(frame) for _, frame in offered}) == 1  # one encoding for all
    assert offered[0][1].text(7).startswith('{"v":1,"channel":"market.BTC-USD","type":"quote",')


async def test_a_hub_behind_sends_the_newest_market_state_and_every_account_message(monkeypatch):
    from monitoring.engine.stream import channel_parse
    from monitoring.stream_hub import stream_bundle_event

    hub, got = StreamHub.of(get_channel_layer()), []

    class Subscriber:
        def offer(self, channel, event, frame, lost) -> None:
            got.append((channel.name, event["kind"], event["data"].get("n"), lost))

    for name in ("market.BTC-USD", "orders"):
        hub.members[name] = {Subscriber(): None}
        hub.parsed[name] = channel_parse(name)
    t = T0.isoformat()
    bundle = {
        "market.BTC-USD": [("trade", {"n": n}, t) for n in range(10)]
        + [("quote", {"n": 10}, t), ("trade", {"n": 11}, t), ("quote", {"n": 12}, t)],
        "orders": [("order", {"n": n}, t) for n in range(5)],
    }
    await hub.deliver(stream_bundle_event(bundle))  # read at once: everything
    assert len(got) == 18 and all(lost == 0 for *_, lost in got)
    got.clear()
    late = stream_bundle_event(bundle)
    monkeypatch.setattr(
        stream_hub, "wall_clock", lambda: late["sent"] + 2 * stream_hub.BEHIND_SECONDS
    )
    await hub.deliver(late)  # read long after it was sent: the hub is behind
    # Market data: the newest trade and quote, the 11 others told as dropped (seq skips them).
    assert got[:2] == [("market.BTC-USD", "trade", 11, 11), ("market.BTC-USD", "quote", 12, 0)]
    assert got[2:] == [("orders", "order", n, 0) for n in range(5)]  # every account message
