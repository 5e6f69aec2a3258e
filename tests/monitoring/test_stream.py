"""The stream protocol end to end through the ASGI app: auth, subscribe, snapshots, seq, scoping.

Every message received is validated against docs/websocket.schema.json.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from monitoring.realtime import apublish, stream_jsonable
from tests.factories import AccountFactory, BarFactory, OrderFactory, SymbolFactory, UserFactory
from tests.monitoring.stream_helpers import StreamClient
from trading.models import Account

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures(
        "close_thread_connections", "fresh_channel_layer", "fast_password_hashing"
    ),
]
T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


@database_sync_to_async
def user_with(name: str, role: str | None = "viewer", accounts: tuple[str, ...] = ()):
    """Create a user with ``role`` granted ``accounts`` (created when missing)."""
    from trading.models import Account

    user = UserFactory(username=name)
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    for account in accounts:
        found = Account.objects.filter(name=account).first() or AccountFactory(name=account)
        found.members.add(user)
    return user


@database_sync_to_async
def token_of(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


@database_sync_to_async
def market_world() -> None:
    btc = SymbolFactory(name="BTC-USD")
    for i in range(3):
        BarFactory(symbol=btc, ts=T0 + dt.timedelta(minutes=i), close=100.5 + i, high=110.0)


async def publish(channel: str, kind: str, data: dict) -> None:
    await apublish(get_channel_layer(), channel, kind, data)


def order(account: str, n: int) -> dict:
    return {
        "account": account, "client_order_id": f"c{n}", "symbol": "BTC-USD", "side": "buy",
        "type": "market", "quantity": Decimal("0.5"), "status": "open",
        "filled_quantity": Decimal("0"),
    }  # fmt: skip


async def test_unauthenticated_is_closed_4401():
    client = await StreamClient().open()
    assert await client.close_code() == 4401
    bad = await StreamClient("token=nope").open()
    assert await bad.close_code() == 4401


async def test_market_snapshot_then_live_messages_in_sequence():
    await market_world()
    key = await token_of(await user_with("alice"))
    client = await StreamClient(f"token={key}").open()
    ack = await client.subscribe("market.BTC-USD", "market.NOPE-USD", "weather")
    assert ack["channels"] == ["market.BTC-USD"]
    assert ack["refused"] == {"market.NOPE-USD": "unknown symbol", "weather": "unknown channel"}
    snapshot = await client.receive()
    assert (snapshot["type"], snapshot["seq"]) == ("snapshot", 1)
    assert [b["close"] for b in snapshot["data"]["bars"]] == ["100.5", "101.5", "102.5"]
    bar = {"symbol": "BTC-USD", "timeframe": "1m", "ts": T0.isoformat(), "open": "1",
           "high": "2", "low": "0.5", "close": "1.5", "volume": "3", "closed": False}
    await publish("market.BTC-USD", "bar", bar)
    await publish("market.ETH-USD", "bar", {**bar, "symbol": "ETH-USD"})  # not subscribed
    await publish("market.BTC-USD", "trade", {"symbol": "BTC-USD", "ts": T0.isoformat(),
                                              "price": "1.5", "size": "0.1", "side": "buy"})
    live = [await client.receive(), await client.receive()]
    assert [(m["type"], m["seq"]) for m in live] == [("bar", 2), ("trade", 3)]
    assert live[0]["data"] == bar
    assert await client.nothing_more()
    await client.send({"op": "ping", "id": "p"})
    assert (await client.receive())["type"] == "pong"
    await client.close()


async def test_accounts_reach_only_their_users():
    alice = await user_with("alice", "viewer", ("paper",))
    mallory = await user_with("mallory", "trader", ("other",))
    await database_sync_to_async(lambda: OrderFactory(
        account=Account.objects.get(name="paper"), symbol=SymbolFactory(name="BTC-USD")
    ))()
    clients = {}
    for user in (alice, mallory):
        clients[user.username] = client = await StreamClient(f"token={await token_of(user)}").open()
        await client.subscribe("orders", "fills", "portfolio", "risk")
        snapshots = {m["channel"]: m["data"] for m in [await client.receive() for _ in range(4)]}
        mine = "paper" if user is alice else "other"
        assert snapshots["orders"]["accounts"] == [mine]
        assert {o["account"] for o in snapshots["orders"]["open"]} <= {mine}
        assert [a["account"] for a in snapshots["portfolio"]["accounts"]] == [mine]
        assert [s["account"] for s in snapshots["risk"]["states"]] == [mine]
    await publish("orders", "order", order("other", 1))
    await publish("orders", "order", order("paper", 2))
    await publish("risk", "state", {"account": "paper", "state": "halted", "reason": "test"})
    got = await clients["alice"].receive()
    assert (got["data"]["client_order_id"], got["seq"]) == ("c2", 2)
    assert (await clients["alice"].receive())["type"] == "state"
    assert (await clients["mallory"].receive())["data"]["client_order_id"] == "c1"
    assert await clients["mallory"].nothing_more() and await clients["alice"].nothing_more()
    for client in clients.values():
        await client.close()


async def test_a_user_without_role_or_grant_is_refused_channels():
    nobody = await user_with("nobody", role=None)
    client = await StreamClient(f"token={await token_of(nobody)}").open()
    ack = await client.subscribe("system")
    assert ack["refused"] == {"system": "needs the viewer role"}
    loner = await user_with("loner", "viewer")
    client2 = await StreamClient(f"token={await token_of(loner)}").open()
    ack = await client2.subscribe("orders", "system")
    assert ack["refused"] == {"orders": "no account granted"}
    assert (await client2.receive())["channel"] == "system"
    await client.close()
    await client2.close()


async def test_unsubscribe_stops_and_resubscribe_restarts_at_one():
    await market_world()
    client = await StreamClient(f"token={await token_of(await user_with('bob'))}").open()
    await client.subscribe("market.BTC-USD")
    await client.receive()
    await publish("market.BTC-USD", "quote", {"symbol": "BTC-USD", "ts": T0.isoformat(),
                  "bid": "1", "bid_size": "1", "ask": "2", "ask_size": "1"})  # fmt: skip
    assert (await client.receive())["seq"] == 2
    await client.send({"op": "unsubscribe", "channels": ["market.BTC-USD"], "id": 2})
    assert (await client.receive())["channels"] == ["market.BTC-USD"]
    await publish("market.BTC-USD", "quote", {"symbol": "BTC-USD", "ts": T0.isoformat(),
                  "bid": "1", "bid_size": "1", "ask": "2", "ask_size": "1"})  # fmt: skip
    assert await client.nothing_more()
    await client.subscribe("market.BTC-USD", request_id=3)
    assert (await client.receive())["seq"] == 1
    await client.send({"op": "dance"})
    assert (await client.receive())["type"] == "error"
    await client.close()


async def test_ticket_jwt_and_session_authenticate():
    user = await user_with("carol", "viewer", ("paper",))

    @database_sync_to_async
    def ticket() -> str:
        api = APIClient()
        api.force_authenticate(user)
        response = api.post("/api/v1/ws/ticket")
        assert response.status_code == 201, response.content
        return response.json()["ticket"]

    one = await ticket()
    client = await StreamClient(f"ticket={one}").open()
    assert (await client.subscribe("orders"))["channels"] == ["orders"]
    await client.close()
    again = await StreamClient(f"ticket={one}").open()  # single use
    assert await again.close_code() == 4401
    access = await database_sync_to_async(lambda: str(RefreshToken.for_user(user).access_token))()
    jwt = await StreamClient(f"token={access}").open()
    assert (await jwt.subscribe("orders"))["channels"] == ["orders"]
    await jwt.close()

    @database_sync_to_async
    def cookie() -> bytes:
        browser = Client()
        browser.force_login(user)
        name = settings.SESSION_COOKIE_NAME
        return f"{name}={browser.cookies[name].value}".encode()

    same = [(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", await cookie())]
    session = await StreamClient(headers=same).open()
    assert (await session.subscribe("portfolio"))["channels"] == ["portfolio"]
    await session.close()
    foreign = [(b"origin", b"http://evil.test"), (b"cookie", await cookie())]
    refused = await StreamClient(headers=foreign).open()
    assert await refused.close_code() == 4401


async def test_backtest_progress_reaches_one_hundred_percent():
    from backtesting.services import Costs, backtest_execute, backtest_run_create

    await database_sync_to_async(SymbolFactory)(name="BTC-USD")
    run = await database_sync_to_async(backtest_run_create)(
        strategy="sma_cross", params={}, symbols=["BTC-USD"], timeframe="1m",
        start=T0, end=T0 + dt.timedelta(days=2), costs=Costs(), data_source="sim",
    )  # fmt: skip
    client = await StreamClient(f"token={await token_of(await user_with('dave'))}").open()
    assert (await client.subscribe(f"backtests.{run.pk}", "backtests.999999"))["refused"] == {
        "backtests.999999": "unknown backtest"
    }
    snapshot = await client.receive()
    assert snapshot["data"]["status"] == "pending" and snapshot["data"]["done"] == 0
    await database_sync_to_async(backtest_execute)(run=run, report=None)
    updates = []
    while not updates or updates[-1]["data"]["status"] == "running":
        updates.append(await client.receive())
    done = [u["data"]["done"] for u in updates]
    assert done == sorted(done) and len(updates) >= 3  # 2,880 bars: a mark every 1,000 and the end
    last = updates[-1]["data"]
    assert (last["status"], last["fraction"], last["done"]) == ("completed", 1.0, last["total"])
    assert [u["seq"] for u in updates] == list(range(2, len(updates) + 2))
    await client.close()


async def test_messages_the_layer_dropped_are_told_or_close_the_connection():
    await market_world()
    user = await user_with("erin", "viewer", ("paper",))
    client = await StreamClient(f"token={await token_of(user)}").open()
    await client.subscribe("market.BTC-USD", "orders")
    assert [(await client.receive())["seq"] for _ in "ab"] == [1, 1]
    quote = {"symbol": "BTC-USD", "ts": T0.isoformat(), "bid": "1", "bid_size": "1", "ask": "2",
             "ask_size": "1"}

    async def send(channel: str, kind: str, data: dict, pseq: int) -> None:
        await get_channel_layer().group_send(channel, {
            "type": "stream.message", "channel": channel, "kind": kind,
            "data": stream_jsonable(data),
            "ts": T0.isoformat(), "origin": "elsewhere", "pseq": pseq})  # fmt: skip

    await send("market.BTC-USD", "quote", quote, 1)
    await send("market.BTC-USD", "quote", quote, 5)  # 2, 3 and 4 never arrived
    got = [await client.receive() for _ in range(3)]
    assert [(m["type"], m["seq"]) for m in got] == [("quote", 2), ("conflated", 6), ("quote", 7)]
    assert got[1]["data"] == {"dropped": 3}  # the gap 3..5 is told
    await send("orders", "order", order("paper", 1), 1)
    await send("orders", "order", order("paper", 3), 3)  # an order lost: resync from snapshots
    while (message := await client.comm.receive_output(timeout=5))["type"] != "websocket.close":
        pass  # c1 may or may not go out before the close: the snapshot after it has it anyway
    assert message["code"] == 4429
