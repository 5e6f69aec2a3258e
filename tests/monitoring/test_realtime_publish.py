"""``monitoring.realtime.publish`` from sync code: every message reaches a real subscriber, in
order, after its commit; a process where nobody can listen (a CLI backtest on the in-process
layer) pays nothing for it; on Redis one loop per process sends them (a forked worker its own).

Runs on whichever channel layer the settings give (in-process, or Redis with ``REDIS_URL``).
"""

from __future__ import annotations

import os

import pytest
import redis.exceptions
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, channel_layers, get_channel_layer
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from rest_framework.authtoken.models import Token

from monitoring import realtime
from monitoring.realtime import publish
from tests.factories import UserFactory
from tests.monitoring.stream_helpers import StreamClient

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections", "fresh_channel_layer"),
]


@database_sync_to_async
def viewer_token() -> str:
    # Staff: heartbeats name an account and reach only those who may see it (staff: all).
    user = UserFactory(username="watcher", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    return Token.objects.get_or_create(user=user)[0].key


def heartbeat(i: int) -> dict:
    return {"account": "paper", "status": f"n{i}"}


@database_sync_to_async
def publish_from_sync_code(count: int) -> None:
    """Publish ``count`` heartbeats as services do: some alone, some in one transaction, and a
    rolled-back one that must never be sent."""
    for i in range(count // 2):
        publish("system", "heartbeat", heartbeat(i))
    with transaction.atomic():
        for i in range(count // 2, count):
            publish("system", "heartbeat", heartbeat(i))
    with pytest.raises(RuntimeError), transaction.atomic():
        publish("system", "heartbeat", heartbeat(-1))
        raise RuntimeError("rolled back")


async def test_sync_publishes_reach_a_subscriber_in_order_after_commit():
    client = await StreamClient(f"token={await viewer_token()}").open()
    await client.subscribe("system")
    assert (await client.receive())["type"] == "snapshot"
    await publish_from_sync_code(60)
    got = [await client.receive() for _ in range(60)]
    assert [m["data"]["status"] for m in got] == [f"n{i}" for i in range(60)]
    assert [m["seq"] for m in got] == list(range(2, 62))  # none lost upstream, none rolled back
    assert await client.nothing_more()
    await client.close()


def test_nobody_listening_in_process_nothing_is_numbered_or_sent():
    layer = get_channel_layer()
    if not isinstance(layer, InMemoryChannelLayer):
        pytest.skip("the in-process layer's shortcut (Redis may have listeners elsewhere)")
    channel = "backtests.424242"
    for i in range(1000):
        publish(channel, "progress", {"done": i})
    assert channel not in realtime._PSEQ  # skipped before numbering: no loop was started
    inbox = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(channel, inbox)
    publish(channel, "progress", {"done": 1000})
    got = async_to_sync(layer.receive)(inbox)
    assert (got["data"], got["pseq"]) == ({"done": 1000}, 1)  # a listener gets it, numbered 1


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (the Redis layer)")
def test_redis_sends_from_one_loop_and_a_forked_child_starts_its_own():
    layer = get_channel_layer()
    inbox = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("system", inbox)
    publish("system", "heartbeat", heartbeat(0))
    publish("system", "heartbeat", heartbeat(1))
    pid = os.fork()
    if pid == 0:  # the child inherits the parent's loop object but not its thread
        code = 1
        try:
            publish("system", "heartbeat", heartbeat(2))
            code = 0
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    publish("system", "heartbeat", heartbeat(3))
    got = [async_to_sync(layer.receive)(inbox) for _ in range(4)]
    assert [m["data"]["status"] for m in got] == ["n0", "n1", "n2", "n3"]
    assert [m["origin"] == realtime.ORIGIN for m in got] == [True, True, False, True]
    assert [m["pseq"] for m in got] == [got[0]["pseq"], got[0]["pseq"] + 1, 1, got[0]["pseq"] + 2]
    async_to_sync(layer.group_discard)("system", inbox)


def test_an_unreachable_redis_fails_the_publisher_instead_of_dropping(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]},  # discard port: refused
        }
    }
    channel_layers.backends.clear()
    with pytest.raises(redis.exceptions.ConnectionError):
        publish("system", "heartbeat", heartbeat(0))
