"""A bundle published on the loop of this process's hub (``runtrader --serve``) is handed to the
hub directly, once, and does not wait behind the hub's layer channel.

Through the layer, a loaded engine's hub fell a minute behind its layer channel (a FIFO of every
bundle, market data included) and order notices expired there: 4429 for every client.

Runs on whichever channel layer the settings give (in-process, or Redis with ``REDIS_URL``).
"""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from monitoring.realtime import stream_jsonable
from monitoring.stream_hub import BUNDLES, DELIVERED, BundleRelay, StreamHub, stream_bundle_event
from tests.monitoring.stream_helpers import StreamClient
from tests.monitoring.test_stream import T0, market_world, order, token_of, user_with
from trading.runtime import broadcast

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures(
        "close_thread_connections", "fresh_channel_layer", "fast_password_hashing"
    ),
]


def trade(n: int) -> dict:
    return {"symbol": "BTC-USD", "ts": T0.isoformat(), "price": f"{100 + n}", "size": "0.1",
            "side": "buy"}  # fmt: skip


async def orders_client(name: str) -> StreamClient:
    user = await user_with(name, "viewer", ("paper",))
    client = await StreamClient(f"token={await token_of(user)}").open()
    await client.subscribe("orders", "market.BTC-USD")
    assert [(await client.receive())["type"] for _ in "ab"] == ["snapshot", "snapshot"]
    return client


def stall(layer, monkeypatch) -> tuple[asyncio.Event, list[dict]]:
    """Make the layer's ``group_send`` hang (Redis away, or a minute behind) until the event
    returned is set; the list returned gets each message it was handed."""
    stalled, sent = asyncio.Event(), []

    async def stalled_send(group: str, message: dict) -> None:
        sent.append(message)
        await stalled.wait()  # the send does not come back

    monkeypatch.setattr(layer, "group_send", stalled_send)
    return stalled, sent


async def first_send_begun(sent: list[dict]) -> None:
    """Wait until a stalled layer was handed its first message (and hangs in that send)."""
    async with asyncio.timeout(5):
        while not sent:
            await asyncio.sleep(0)


async def test_a_bundle_reaches_the_local_hubs_clients_once_in_order():
    await market_world()
    client = await orders_client("ada")
    layer = get_channel_layer()
    for round_ in range(3):
        items = [("orders", "order", order("paper", 3 * round_ + n), T0.isoformat())
                 for n in range(3)]  # fmt: skip
        items.append(("market.BTC-USD", "trade", trade(round_), T0.isoformat()))
        await broadcast(layer, items)
    got = [await client.receive() for _ in range(12)]
    orders = [m for m in got if m["channel"] == "orders"]
    assert [m["data"]["client_order_id"] for m in orders] == [f"c{n}" for n in range(9)]
    assert [m["seq"] for m in orders] == list(range(2, 11))
    assert [m["seq"] for m in got if m["channel"] == "market.BTC-USD"] == [2, 3, 4]
    assert await client.nothing_more()  # the layer's copies were skipped, not sent again
    await client.close()


async def test_order_notices_do_not_wait_for_a_stalled_layer(monkeypatch):
    await market_world()
    client = await orders_client("bea")
    layer = get_channel_layer()
    hub = StreamHub.of(layer)
    stalled, sent = stall(layer, monkeypatch)
    items = [("orders", "order", order("paper", 7), T0.isoformat())]
    publishing = asyncio.create_task(broadcast(layer, items))
    got = await client.receive()
    assert (got["channel"], got["data"]["client_order_id"]) == ("orders", "c7")
    assert sent[0][DELIVERED] == hub.token  # the layer's copy says who has it already
    stalled.set()
    await publishing
    await client.close()


async def test_a_bundle_from_another_process_still_comes_through_the_layer():
    await market_world()
    client = await orders_client("cal")
    layer = get_channel_layer()
    message = {"kind": "order", "ts": T0.isoformat(), "data": stream_jsonable(order("paper", 9))}
    elsewhere = {
        "type": "stream.bundle",
        "origin": "other+bundle",
        "sent": 0.0,
        DELIVERED: "another-hub",
        "channels": [["orders", 1, [message]]],
    }
    await layer.group_send(BUNDLES, elsewhere)
    got = await client.receive()
    assert (got["channel"], got["data"]["client_order_id"]) == ("orders", "c9")
    await client.close()


async def test_later_bundles_reach_local_clients_while_the_layer_send_is_stalled(monkeypatch):
    """With the relay the broadcaster never waits for Redis: bundle after bundle goes out here.

    Before, each bundle's layer send was awaited and then paced (as long again): one slow send
    held every later order notice back (a soak's notices came minutes late).
    """
    await market_world()
    client = await orders_client("dan")
    layer = get_channel_layer()
    stalled, sent = stall(layer, monkeypatch)
    relay = BundleRelay(layer)
    for round_ in range(3):
        items = [("orders", "order", order("paper", round_), T0.isoformat()),
                 ("market.BTC-USD", "trade", trade(round_), T0.isoformat())]  # fmt: skip
        await asyncio.wait_for(broadcast(layer, items, relay), 5)  # never waits for the layer
        await first_send_begun(sent)  # the relay's send of the first bundle (it hangs)
    got = [await client.receive() for _ in range(6)]
    assert [m["data"]["client_order_id"] for m in got if m["channel"] == "orders"] == [
        "c0", "c1", "c2"
    ]  # fmt: skip
    assert len(sent) == 1  # the first bundle's send still hangs; the other two wait, merged
    stalled.set()
    await relay.close()
    # The two that waited went in one layer message: both order parts, in order; market data
    # only from the newest (another process's hub tells its clients the jump as dropped).
    assert len(sent) == 2 and relay.merged == 1
    parts = [(channel, pseq) for channel, pseq, _ in sent[1]["channels"]]
    first_pseq = dict((c, p) for c, p, _ in sent[0]["channels"])
    assert parts == [
        ("orders", first_pseq["orders"] + 1),
        ("orders", first_pseq["orders"] + 2),
        ("market.BTC-USD", first_pseq["market.BTC-USD"] + 2),
    ]
    assert await client.nothing_more()  # the layer's copies are skipped here
    await client.close()


async def test_the_relay_drops_the_oldest_waiting_bundles_past_its_backlog(monkeypatch):
    layer = get_channel_layer()
    stalled, sent = stall(layer, monkeypatch)
    monkeypatch.setattr(BundleRelay, "ACCOUNT_BACKLOG", 4)
    relay = BundleRelay(layer)
    for n in range(8):
        relay.put(stream_bundle_event({"orders": [("order", order("paper", n), T0.isoformat())]}))
        await first_send_begun(sent)  # the relay's task takes the first bundle and hangs
    assert relay.dropped == 2  # 1 sent + 5 waiting (4 past the newest) kept, 2 oldest gone
    stalled.set()
    await relay.close()
    ids = [m["data"]["client_order_id"] for e in sent for _, _, ms in e["channels"] for m in ms]
    assert ids == ["c0", "c3", "c4", "c5", "c6", "c7"]


async def test_bundles_sent_before_the_first_subscriber_may_come_late_through_the_layer():
    """Nothing is lost on the direct hand-over: a jump there is no loss, a late copy no rewind.

    As the first client subscribes, bundles sent without the hub's token are still on their
    way through the relay and the layer while newer ones are handed over directly. Counted as
    lost, that closed clients with 4429 ("messages of orders lost upstream") in the soak.
    """
    await market_world()
    client = await orders_client("eve")
    layer = get_channel_layer()
    hub = StreamHub.of(layer)
    first, second, third = (
        stream_bundle_event({"orders": [("order", order("paper", n), T0.isoformat())]})
        for n in range(3)
    )
    await layer.group_send(BUNDLES, first)  # sent while the hub had no subscriber: no token
    got = [await client.receive()]
    third[DELIVERED] = hub.token
    await hub.deliver(third)  # handed over directly, ahead of the second
    got.append(await client.receive())
    await layer.group_send(BUNDLES, second)  # comes late, through the layer
    got.append(await client.receive())
    assert [m["data"]["client_order_id"] for m in got] == ["c0", "c2", "c1"]
    assert [m["seq"] for m in got] == [2, 3, 4]
    assert await client.nothing_more()  # no 4429 close
    await client.close()
