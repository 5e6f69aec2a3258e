"""WebSockets require authentication: session or token."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from rrr_site.asgi import application
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
HEADERS = [(b"origin", b"http://localhost"), (b"host", b"localhost")]


async def connect(path: str, headers=HEADERS):
    """Open a WebSocket to the ASGI app."""
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def test_anonymous_connection_is_refused():
    communicator, connected, code = await connect("/ws/orders/")
    assert not connected and code == 4401


async def test_token_in_query_string_authenticates_and_receives_group_messages():
    user = await database_sync_to_async(UserFactory)(username="ws-user")
    token = await database_sync_to_async(Token.objects.create)(user=user)
    communicator, connected, _ = await connect(f"/ws/market.BTC-USD/?token={token.key}")
    assert connected
    await get_channel_layer().group_send(
        "market.BTC-USD", {"type": "group.message", "kind": "bar", "data": {"close": 1}}
    )
    message = await communicator.receive_json_from(timeout=5)
    assert message == {"group": "market.BTC-USD", "kind": "bar", "data": {"close": 1}}
    await communicator.disconnect()


async def test_bad_token_and_unknown_group_are_refused():
    user = await database_sync_to_async(UserFactory)(username="ws-user2")
    token = await database_sync_to_async(Token.objects.create)(user=user)
    _, connected, code = await connect("/ws/orders/?token=not-a-token")
    assert not connected and code == 4401
    _, connected, code = await connect(f"/ws/secrets/?token={token.key}")
    assert not connected and code == 4404
