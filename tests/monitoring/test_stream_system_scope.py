"""The stream's ``system`` channel shows a user the heartbeats and feed notices of the accounts
they may see only (staff: every account's), in its snapshot and live; models go to everyone.

Real server (uvicorn on 127.0.0.1) and a real WebSocket client.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from monitoring.realtime import apublish
from tests.factories import AccountFactory, UserFactory
from tests.monitoring.stream_helpers import check, serving

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures(
        "close_thread_connections", "fresh_channel_layer", "fast_password_hashing"
    ),
]


@database_sync_to_async
def world() -> dict[str, str]:
    """Two traders with an account each, a staff user; a stored heartbeat per account."""
    from monitoring.services import system_event_record

    tokens = {}
    for name in ("alice", "bob"):
        user = UserFactory(username=name)
        user.groups.add(Group.objects.get_or_create(name="trader")[0])
        AccountFactory(name=f"{name}-acct").members.add(user)
        system_event_record(component="runtrader", kind="heartbeat", message="beat",
                            context={"account": f"{name}-acct", "status": "running",
                                     "orders": 7})  # fmt: skip
        tokens[name] = Token.objects.create(user=user).key
    ops = UserFactory(username="ops", is_staff=True)
    ops.groups.add(Group.objects.get_or_create(name="viewer")[0])
    tokens["ops"] = Token.objects.create(user=ops).key
    return tokens


async def receive(ws) -> dict:
    return check(json.loads(await asyncio.wait_for(ws.recv(), 5)))


async def open_system(port: int, token: str):
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws/v1/stream?token={token}",
                                  open_timeout=5)  # fmt: skip
    await ws.send(json.dumps({"op": "subscribe", "channels": ["system"], "id": 1}))
    ack = await receive(ws)
    assert ack["type"] == "ack" and ack["channels"] == ["system"], ack
    snapshot = await receive(ws)
    assert snapshot["type"] == "snapshot"
    return ws, sorted(b["account"] for b in snapshot["data"]["heartbeats"])


async def test_the_system_channel_shows_only_the_users_accounts():
    tokens = await world()
    async with serving() as port:
        sockets = {}
        for name, seen in [("alice", ["alice-acct"]), ("bob", ["bob-acct"]),
                           ("ops", ["alice-acct", "bob-acct"])]:  # fmt: skip
            sockets[name], heartbeats = await open_system(port, tokens[name])
            assert heartbeats == seen, name
        layer = get_channel_layer()
        for account in ("alice-acct", "bob-acct"):
            beat = {"account": account, "status": "running", "orders": 3}
            await apublish(layer, "system", "heartbeat", beat)
            await apublish(layer, "system", "feed",
                           {"account": account, "feed": "sim", "status": "stale"})  # fmt: skip
        await apublish(layer, "system", "model", {"name": "m", "version": 2, "active": True})
        for name, expected in [
            ("alice", [("heartbeat", "alice-acct"), ("feed", "alice-acct"), ("model", None)]),
            ("bob", [("heartbeat", "bob-acct"), ("feed", "bob-acct"), ("model", None)]),
            ("ops", [("heartbeat", "alice-acct"), ("feed", "alice-acct"),
                     ("heartbeat", "bob-acct"), ("feed", "bob-acct"), ("model", None)]),
        ]:  # fmt: skip
            got = [await receive(sockets[name]) for _ in expected]
            assert [(m["type"], m["data"].get("account")) for m in got] == expected, name
        for ws in sockets.values():
            await ws.close()
