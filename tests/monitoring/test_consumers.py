"""WebSockets through the full ASGI app: who may connect, to what, and which messages they get.

Every refusal is an accepted handshake closed with a code (4401 unauthenticated, 4403 forbidden,
4404 not found), so clients can tell them apart; a refused handshake would be a bare HTTP 403.
"""

from __future__ import annotations

import asyncio

import pytest
import websockets
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token

from monitoring.consumers import LiveGroupConsumer
from rrr_site.asgi import application
from tests.factories import AccountFactory, SymbolFactory, UserFactory
from tests.monitoring.stream_helpers import serving

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]
SAME_ORIGIN = [(b"origin", b"http://localhost"), (b"host", b"localhost")]


async def open_socket(path: str, headers: list | None = None) -> WebsocketCommunicator:
    """Open a WebSocket to the ASGI app; the handshake itself is always accepted."""
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect(timeout=5)
    assert connected, "refusals must accept, then close with a code"
    return communicator


async def close_code(path: str, headers: list | None = None) -> tuple[int, str]:
    """Return the close code and reason the server sends right after the handshake."""
    communicator = await open_socket(path, headers)
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    await communicator.disconnect()
    return message["code"], message.get("reason", "")


@database_sync_to_async
def token_for(username: str, *, accounts: tuple[str, ...] = (), **flags) -> str:
    """Create a user granted ``accounts`` and return their API token key."""
    user = UserFactory(username=username, **flags)
    for name in accounts:
        AccountFactory(name=name).members.add(user)
    return Token.objects.create(user=user).key


@database_sync_to_async
def session_cookie(username: str) -> bytes:
    """Log ``username`` in and return the ``Cookie`` header value of the session."""
    client = Client()
    client.force_login(UserFactory(username=username))
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


async def publish(group: str, *payloads: dict) -> None:
    """Broadcast each payload to ``group`` the way the runtime and services do."""
    for data in payloads:
        await get_channel_layer().group_send(
            group, {"type": "group.message", "kind": "order", "data": data}
        )


async def received_accounts(communicator: WebsocketCommunicator, count: int) -> list:
    """Return the ``account`` of the next ``count`` messages, then assert nothing else came."""
    accounts = [
        (await communicator.receive_json_from(timeout=5))["data"].get("account")
        for _ in range(count)
    ]
    assert await communicator.receive_nothing(timeout=0.2)
    return accounts


# --- authentication -------------------------------------------------------------------------


async def test_anonymous_connection_is_closed_4401():
    assert (await close_code("/ws/orders/", SAME_ORIGIN))[0] == 4401


@pytest.mark.parametrize("query", ["?token=not-a-token", "?token=inactive"])
async def test_bad_or_inactive_token_is_closed_4401(query):
    key = await token_for("sleeper", is_active=False)
    query = query.replace("inactive", key)
    assert (await close_code(f"/ws/market.BTC-USD/{query}"))[0] == 4401


async def test_token_needs_no_origin_and_receives_group_messages():
    await database_sync_to_async(SymbolFactory)(name="BTC-USD")
    key = await token_for("native-app")
    communicator = await open_socket(
        "/ws/market.BTC-USD/", [(b"authorization", f"Token {key}".encode())]
    )
    await get_channel_layer().group_send(
        "market.BTC-USD", {"type": "group.message", "kind": "bar", "data": {"close": 1}}
    )
    message = await communicator.receive_json_from(timeout=5)
    assert message == {"group": "market.BTC-USD", "kind": "bar", "data": {"close": 1}}
    await communicator.disconnect()


async def test_bad_token_is_not_rescued_by_a_session():
    cookie = await session_cookie("browser")
    headers = [*SAME_ORIGIN, (b"cookie", cookie)]
    assert (await close_code("/ws/system/?token=wrong", headers))[0] == 4401


async def test_session_from_our_origin_is_accepted():
    await database_sync_to_async(SymbolFactory)(name="ETH-USD")
    cookie = await session_cookie("browser")
    communicator = await open_socket("/ws/market.ETH-USD/", [*SAME_ORIGIN, (b"cookie", cookie)])
    assert await communicator.receive_nothing(timeout=0.2), "no close: the session counts"
    await communicator.disconnect()


@pytest.mark.parametrize("origin", [b"http://evil.example", None])
async def test_session_from_a_foreign_or_missing_origin_is_closed_4401(origin):
    await database_sync_to_async(SymbolFactory)(name="ETH-USD")
    headers = [(b"host", b"localhost"), (b"cookie", await session_cookie("victim"))]
    if origin is not None:
        headers.append((b"origin", origin))
    code, reason = await close_code("/ws/market.ETH-USD/", headers)
    assert code == 4401 and "Origin" in reason


# --- groups ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/ws/secrets/",
        "/ws/market.BTC-USD.x/",
        "/ws/market.BTC-USD%0A/",
        "/ws/orders%0A/",
        "/ws/market.btc-usd/",
        "/ws/market.ZZZ-QQQ/",  # well formed, but no such symbol
        "/ws/orders/extra/",
        "/elsewhere/",
    ],
)
async def test_unknown_group_symbol_or_route_is_closed_4404(path):
    await database_sync_to_async(SymbolFactory)(name="BTC-USD")
    key = await token_for("curious", is_staff=True)
    sep = "&" if "?" in path else "?"
    assert (await close_code(f"{path}{sep}token={key}"))[0] == 4404


async def test_system_group_is_for_staff_only():
    user_key = await token_for("plain")
    staff_key = await token_for("operator", is_staff=True)
    assert (await close_code(f"/ws/system/?token={user_key}"))[0] == 4403
    communicator = await open_socket(f"/ws/system/?token={staff_key}")
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


# --- per-account authorisation --------------------------------------------------------------


@pytest.mark.parametrize("group", ["orders", "portfolio", "risk"])
async def test_user_receives_only_their_accounts_messages(group):
    alice = await token_for("alice", accounts=("alpha",))
    await token_for("bob", accounts=("bravo",))
    communicator = await open_socket(f"/ws/{group}/?token={alice}")
    await publish(group, {"account": "bravo"}, {"no": "account"}, {"account": "alpha"})
    assert await received_accounts(communicator, 1) == ["alpha"]
    await communicator.disconnect()


async def test_staff_receives_every_account():
    staff = await token_for("ops", is_staff=True)
    await token_for("alice", accounts=("alpha",))
    communicator = await open_socket(f"/ws/orders/?token={staff}")
    await publish("orders", {"account": "bravo"}, {"no": "account"}, {"account": "alpha"})
    assert await received_accounts(communicator, 3) == ["bravo", None, "alpha"]
    await communicator.disconnect()


async def test_account_query_narrows_to_one_granted_account():
    alice = await token_for("alice", accounts=("alpha", "beta"))
    communicator = await open_socket(f"/ws/orders/?token={alice}&account=beta")
    await publish("orders", {"account": "alpha"}, {"account": "beta"})
    assert await received_accounts(communicator, 1) == ["beta"]
    await communicator.disconnect()


async def test_ungranted_account_or_no_grant_is_closed_4403():
    alice = await token_for("alice", accounts=("alpha",))
    await token_for("bob", accounts=("bravo",))
    loner = await token_for("loner")
    assert (await close_code(f"/ws/orders/?token={alice}&account=bravo"))[0] == 4403
    assert (await close_code(f"/ws/orders/?token={alice}&account=ghost"))[0] == 4403
    assert (await close_code(f"/ws/portfolio/?token={loner}"))[0] == 4403


async def test_revoked_grant_closes_the_stream_4403(monkeypatch):
    monkeypatch.setattr(LiveGroupConsumer, "GRANTS_TTL", 0.0)  # re-read grants on every message
    alice = await token_for("alice", accounts=("alpha",))
    communicator = await open_socket(f"/ws/orders/?token={alice}")
    await publish("orders", {"account": "alpha"})
    assert await received_accounts(communicator, 1) == ["alpha"]

    @database_sync_to_async
    def revoke() -> None:
        from trading.models import Account

        Account.objects.get(name="alpha").members.clear()

    await revoke()
    await publish("orders", {"account": "alpha"})
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close" and message["code"] == 4403


async def test_deactivated_or_deleted_user_loses_the_stream(monkeypatch):
    monkeypatch.setattr(LiveGroupConsumer, "GRANTS_TTL", 0.0)
    keys = [await token_for(name, accounts=("alpha",)) for name in ("gone", "idle")]
    sockets = [await open_socket(f"/ws/orders/?token={key}") for key in keys]

    @database_sync_to_async
    def remove_users() -> None:
        from django.contrib.auth import get_user_model

        get_user_model().objects.filter(username="gone").delete()
        get_user_model().objects.filter(username="idle").update(is_active=False)

    await remove_users()
    await publish("orders", {"account": "alpha"})
    for communicator in sockets:
        message = await communicator.receive_output(timeout=5)
        assert message["type"] == "websocket.close" and message["code"] == 4403


# --- a real server and a real client --------------------------------------------------------


async def test_close_codes_reach_a_real_client_without_origin():
    alice = await token_for("alice", accounts=("alpha",))
    async with serving() as port:
        codes = {}
        for name, path in {
            "bad token": "/ws/orders/?token=nope",
            "forbidden": f"/ws/orders/?token={alice}&account=bravo",
            "unknown": f"/ws/nope/?token={alice}",
        }.items():
            async with websockets.connect(f"ws://127.0.0.1:{port}{path}", open_timeout=5) as ws:
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                codes[name] = ws.close_code
        assert codes == {"bad token": 4401, "forbidden": 4403, "unknown": 4404}
