"""A client's request ``id`` is echoed only when it is JSON a browser can read back.

``{"op":"ping","id":NaN}`` was answered with a pong carrying NaN (or Infinity): Python's json
writes them, browsers' JSON.parse refuses the whole message. Now an id is absent, a string of at
most 128 characters or an integer of at most 2**53 - 1; anything else gets an error (id null).
"""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from tests.factories import UserFactory
from tests.monitoring.stream_helpers import StreamClient, check

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures(
        "close_thread_connections", "fresh_channel_layer", "fast_password_hashing"
    ),
]


@database_sync_to_async
def viewer_token() -> str:
    user = UserFactory(username="idris")
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    return Token.objects.get_or_create(user=user)[0].key


def strict(name: str):
    raise AssertionError(f"the server sent {name}, which is not JSON")


BAD_IDS = ["NaN", "Infinity", "-Infinity", "1e999", "1.5", "true", "[1]", '{"a": 1}',
           "9007199254740993", '"' + "x" * 129 + '"']  # fmt: skip


async def test_an_id_that_cannot_be_echoed_gets_an_error_in_valid_json():
    client = await StreamClient(f"token={await viewer_token()}").open()
    for raw_id in BAD_IDS:
        for op in ("ping", "subscribe", "nope"):
            text = f'{{"op": "{op}", "channels": ["system"], "id": {raw_id}}}'
            await client.comm.send_to(text_data=text)
            answer = (await client.comm.receive_output(timeout=5))["text"]
            reply = check(json.loads(answer, parse_constant=strict))
            assert reply["type"] == "error" and reply["id"] is None, (raw_id, reply)
            assert "id must be a string of at most 128 characters or an integer" in reply["error"]
    for good in ("p", "x" * 128, 9007199254740991, -3, None):
        await client.send({"op": "ping", "id": good})
        pong = await client.receive()
        assert (pong["type"], pong["id"]) == ("pong", good)
    assert await client.nothing_more()
    await client.close()
