"""The engine's broadcasts go out in bundles: one layer message per round, every channel's
messages in order, to both routes.

Runs on whichever channel layer the settings give (in-process, or Redis with ``REDIS_URL``).
Before, the runtime sent one layer message per stream message: over Redis that is three round
trips each, and a loaded 50-symbol engine got a few out a second (its clients saw ~5% of the
orders and fills, the rest waited in its queue); one per channel and round outran the web
process's hub, whose layer channel then dropped order notices (4429 for every client).
"""

from __future__ import annotations

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

import monitoring.stream_hub as stream_hub
from monitoring.realtime import stream_jsonable
from monitoring.stream_hub import BUNDLES, stream_bundle_event
from rrr_site.asgi import application
from tests.monitoring.stream_helpers import StreamClient
from tests.monitoring.test_stream import T0, market_world, order, token_of, user_with
from trading.runtime import BROADCAST_BATCH, BroadcastQueue, broadcast

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures(
        "close_thread_connections", "fresh_channel_layer", "fast_password_hashing"
    ),
]
ORDERS = 700  # more than one round of the broadcaster (BROADCAST_BATCH)


def trade(n: int) -> dict:
    return {"symbol": "BTC-USD", "ts": T0.isoformat(), "price": f"{100 + n}", "size": "0.1",
            "side": "buy"}  # fmt: skip


async def account_client(name: str) -> StreamClient:
    user = await user_with(name, "viewer", ("paper",))
    return await StreamClient(f"token={await token_of(user)}").open()


@pytest.fixture
def layer_sends(monkeypatch) -> list[str]:
    """Count the layer's group sends (the real layer still sends each)."""
    layer, sends = get_channel_layer(), []
    send = layer.group_send

    async def counted(group: str, message: dict) -> None:
        sends.append(group)
        await send(group, message)

    monkeypatch.setattr(layer, "group_send", counted)
    return sends


async def test_a_backlog_goes_out_one_layer_message_per_round(layer_sends, monkeypatch):
    # However slowly this machine delivers: no market data shed for a hub behind.
    monkeypatch.setattr(stream_hub, "BEHIND_SECONDS", 3600.0)
    await market_world()
    client = await account_client("gus")
    await client.subscribe("market.BTC-USD", "orders")
    assert [(await client.receive())["type"] for _ in "ab"] == ["snapshot", "snapshot"]
    queue = BroadcastQueue()
    for n in range(ORDERS):
        assert queue.put(("orders", "order", order("paper", n), T0.isoformat()))
        if n < 100:
            assert queue.put(("market.BTC-USD", "trade", trade(n), T0.isoformat()))
    queue.close()
    rounds = 0
    while (items := await queue.get_many(BROADCAST_BATCH)) is not None:
        await broadcast(get_channel_layer(), items)
        rounds += 1
    got = [await client.receive() for _ in range(ORDERS + 100)]
    orders = [m for m in got if m["channel"] == "orders"]
    trades = [m for m in got if m["channel"] == "market.BTC-USD"]
    assert [m["data"]["client_order_id"] for m in orders] == [f"c{n}" for n in range(ORDERS)]
    assert [m["seq"] for m in orders] == list(range(2, ORDERS + 2))
    assert [m["data"]["price"] for m in trades] == [f"{100 + n}" for n in range(100)]
    assert [m["seq"] for m in trades] == list(range(2, 102))
    # Account messages first: round 1 is 500 orders, round 2 the other 200 and the trades.
    assert rounds == 2 and layer_sends == [BUNDLES, BUNDLES]
    assert await client.nothing_more()
    await client.close()


async def test_a_lost_bundle_is_told_on_market_data_and_closes_4429_on_orders():
    await market_world()
    client = await account_client("hal")
    await client.subscribe("market.BTC-USD", "orders")
    assert [(await client.receive())["seq"] for _ in "ab"] == [1, 1]
    layer = get_channel_layer()

    async def send(channel: str, kind: str, payloads: list[dict], pseq: int) -> None:
        event = stream_bundle_event({channel: [(kind, p, T0.isoformat()) for p in payloads]})
        event["channels"][0][1] = pseq
        await layer.group_send(BUNDLES, {**event, "origin": "elsewhere"})

    await send("market.BTC-USD", "trade", [trade(0), trade(1)], 1)
    await send("market.BTC-USD", "trade", [trade(5), trade(6)], 3)  # bundle 2 never arrived
    got = [await client.receive() for _ in range(5)]
    assert [(m["type"], m["seq"]) for m in got] == [
        ("trade", 2), ("trade", 3), ("conflated", 5), ("trade", 6), ("trade", 7)
    ]  # fmt: skip
    assert got[2]["data"] == {"dropped": 1}  # a lost bundle: at least one message, told
    await send("orders", "order", [order("paper", 1), order("paper", 2)], 1)
    await send("orders", "order", [order("paper", 5)], 3)  # orders lost: resync from snapshots
    while (message := await client.comm.receive_output(timeout=5))["type"] != "websocket.close":
        pass
    assert message["code"] == 4429


async def test_the_older_route_gets_its_groups_messages_of_a_bundle(layer_sends):
    await market_world()
    token = await token_of(await user_with("ida", "viewer", ("paper",)))
    old = WebsocketCommunicator(application, f"/ws/orders/?token={token}")
    assert (await old.connect(timeout=5))[0]
    items = [("orders", "order", order("paper", n), T0.isoformat()) for n in range(3)]
    items.append(("fills", "fill", {"account": "paper", "client_order_id": "c2"}, T0.isoformat()))
    items.append(("portfolio", "portfolio", {"account": "paper", "cash": "1"}, T0.isoformat()))
    await broadcast(get_channel_layer(), items)
    got = [await old.receive_json_from(timeout=5) for _ in range(4)]
    assert [(m["kind"], m["data"]["client_order_id"]) for m in got] == [
        ("order", "c0"), ("order", "c1"), ("order", "c2"), ("fill", "c2")
    ]  # fmt: skip
    assert got[0]["data"] == stream_jsonable(order("paper", 0))
    assert layer_sends == [BUNDLES]
    assert await old.receive_nothing(timeout=0.2)  # not the portfolio: not this route's group
    await old.disconnect()
