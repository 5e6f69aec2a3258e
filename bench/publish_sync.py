"""CPU of ``monitoring.realtime.publish`` from sync code (a backtest's progress, a service's
order or risk message), beside the old way in the same run: ``async_to_sync(layer.group_send)``
per message, which started an event loop in a new thread each time (and, on Redis, a connection).

Three cases, each ``--messages`` publishes outside a transaction (each one sent at once):
1. in-process layer, nobody subscribed (a CLI backtest): publish skips it, nothing is sent;
2. in-process layer, a member in the group (the web process, ``runtrader --serve``): sent;
3. Redis layer (``--redis URL``), a member in the group: sent through one loop per process.
Figures are CPU seconds of the whole process (every thread: ``time.process_time``), interleaved
A/B rounds, the median per message; the member's channel is drained between rounds.

    .venv/bin/python bench/publish_sync.py [--messages 1000] [--rounds 5] [--redis URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import print_table, setup_django  # noqa: E402


def _old_publish(layer, channel: str, kind: str, data: dict) -> None:
    """The reference: what ``publish`` did after the commit before (one loop per message)."""
    from asgiref.sync import async_to_sync

    from monitoring.realtime import group_of, stream_event, stream_jsonable

    data = stream_jsonable(data)
    async_to_sync(layer.group_send)(group_of(channel), stream_event(channel, kind, data))


def _cpu_per_message(send, count: int) -> float:
    start = time.process_time()
    for i in range(count):
        send("backtests.1", "progress", {"done": i, "total": count, "status": "running"})
    return (time.process_time() - start) / count


def _case(name: str, layer, member: bool, args, redis_url: str = "") -> list:
    from asgiref.sync import async_to_sync
    from channels.layers import channel_layers

    from monitoring.realtime import publish

    channel_layers.backends["default"] = layer  # what publish() sends through
    inbox = None
    if member:
        inbox = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)("backtests.1", inbox)
    drain = _drainer(layer, inbox, redis_url)
    old, new = [], []
    for _ in range(args.rounds):
        old.append(_cpu_per_message(lambda c, k, d: _old_publish(layer, c, k, d), args.messages))
        drain()
        new.append(_cpu_per_message(publish, args.messages))
        drain()
    if inbox:
        async_to_sync(layer.group_discard)("backtests.1", inbox)
    old_us, new_us = statistics.median(old) * 1e6, statistics.median(new) * 1e6
    return [name, f"{old_us:.1f}", f"{new_us:.1f}", f"{old_us / max(new_us, 1e-3):.0f}x"]


def _drainer(layer, inbox, redis_url: str):
    """Return a function that empties the member's channel (kept under its capacity)."""
    if inbox is None:
        return lambda: None
    if hasattr(layer, "channels"):  # in-process: its queues
        return lambda: layer.channels.pop(inbox, None)

    def drain() -> None:
        import redis

        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=f"{layer.prefix}*"):
            client.delete(key)
        client.close()

    return drain


def _reachable(url: str) -> bool:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--no-redis", action="store_true")
    args = parser.parse_args()
    os.environ.pop("REDIS_URL", None)  # the settings' layer is the in-process one
    setup_django()
    from channels.layers import get_channel_layer
    from channels_redis.core import RedisChannelLayer

    layer = get_channel_layer()
    rows = [
        _case("in-process, nobody subscribed (CLI)", layer, False, args),
        _case("in-process, one member (web/serve)", layer, True, args),
    ]
    if not args.no_redis and not _reachable(args.redis):
        print(f"Redis at {args.redis} not reachable: its case is skipped")
        args.no_redis = True
    if not args.no_redis:
        redis_layer = RedisChannelLayer(hosts=[args.redis], prefix="bench-publish")
        rows.append(_case("Redis, one member", redis_layer, True, args, args.redis))
    load = os.getloadavg()[0]
    print(f"{args.messages} sync publishes x {args.rounds} interleaved rounds; load {load:.2f}")
    print_table(["case", "old us CPU/msg", "publish us CPU/msg", "ratio"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
