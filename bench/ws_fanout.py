"""WebSocket fan-out: N clients on two symbols while the engine publishes 100 market updates/s.

    .venv/bin/python bench/ws_fanout.py                       # 500 clients, 10 s per phase
    .venv/bin/python bench/ws_fanout.py --seconds 60          # the figure run
    .venv/bin/python bench/ws_fanout.py --redis redis://127.0.0.1:6379/9  # scaled layout

The embedded deployment, as ``runtrader --serve`` runs it: one process serves ``rrr_site.asgi``
with uvicorn (the in-memory channel layer) and, on the same event loop, runs an engine loop. At
each tick (``--rate`` per second, alternating BTC-USD and ETH-USD) the engine runs the real order
path (RiskChecker with 20 limits -> OrderManager -> PaperVenue fill -> Portfolio) and queues the
tick's quote for the broadcaster task, which publishes it with ``monitoring.realtime.apublish``
(as ``trading.runtime`` does). Tick-to-order latency counts from the tick's scheduled time to the
order's fill, so any stall of the loop shows.

Phase 1 (reference): nobody connected. Phase 2: ``--clients`` WebSocket clients in a separate
process, each subscribed to ``market.BTC-USD`` and ``market.ETH-USD``; each measures
publish-to-receive latency (envelope ``ts``, stamped when the engine publishes, against its
receive time; one host, one clock). The clients are lean RFC 6455 readers on raw asyncio
protocols (handshake checked, every frame parsed, every message JSON-decoded and its ``seq``
checked): 500 clients of a full WebSocket library cost more CPU than the server they measure on a
2-core machine. Printed: tick-to-order p50/p99 of both phases and their ratio (target: no more
than 10 % worse with clients), publish-to-receive p50/p99 (target p99 < 100 ms), messages
delivered of expected, drops told by ``conflated`` and any seq gap not told, the CPU each process
used in each phase (cores busy), and the server's CPU per message delivered to a client, which
does not depend on how busy the machine is. The load average is printed too: on a shared host it
moves the latency figures (a process short of CPU falls behind and its queues grow).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SYMBOLS = ("BTC-USD", "ETH-USD")
WARMUP_S = 2.0
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's accept-key suffix


# ------------------------------------------------------------------------------ clients


class Clients:
    """What the clients saw: latencies while measuring, drops told, seq gaps."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.stats = {"messages": 0, "deliveries": 0, "dropped": 0, "gaps": 0, "closed": 0}
        self.ready: list[int] = []
        self.told: dict[tuple[int, str], int] = {}  # drops told and not yet seen as seq gaps
        self.go = self.stop = float("inf")  # the measured phase, in publish time
        self.past_stop: set[int] = set()  # clients that got a message published after it

    def on_message(self, message: dict, seen: dict[str, int], i: int) -> None:
        channel, seq, kind = message.get("channel"), message.get("seq"), message.get("type")
        if kind == "conflated":  # it counts drops before it and after it, until the next one
            self.stats["dropped"] += message["data"]["dropped"]
            self.told[(i, channel)] = self.told.get((i, channel), 0) + message["data"]["dropped"]
        if channel in seen and seq != seen[channel] + 1:
            told, skipped = self.told.get((i, channel), 0), seq - seen[channel] - 1
            self.told[(i, channel)] = max(told - skipped, 0)
            if skipped < 0 or skipped > told:
                self.stats["gaps"] += 1  # a gap no conflated message announced
        if channel:
            seen[channel] = seq
        if kind == "snapshot" and len(seen) == len(SYMBOLS):
            self.ready.append(i)  # subscribed, with both snapshots: counts as connected
        elif kind == "quote":
            sent = datetime.fromisoformat(message["ts"]).timestamp()
            if self.go <= sent <= self.stop:
                self.latencies.append(time.time() - sent)
                self.stats["messages"] += 1
            elif sent > self.stop:
                self.past_stop.add(i)
            if sent >= self.go:
                self.stats["deliveries"] += 1  # after the phase too: the CPU covers those


class LeanClient(asyncio.Protocol):
    """One WebSocket client as lean as an honest one can be: RFC 6455 on a raw asyncio protocol.

    It does what any client must (the opening handshake with its accept key checked, frame
    parsing, JSON decoding of every message, seq checks, pongs) and nothing more, so that the
    client process is not what limits the figure: 500 clients of a full-featured library cost
    several times the CPU of the server they measure on a 2-core machine.
    """

    def __init__(self, clients: Clients, i: int, host: str, target: str) -> None:
        self.clients, self.i, self.host, self.target = clients, i, host, target
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.buffer = bytearray()
        self.upgraded = False
        self.seen: dict[str, int] = {}
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(
            f"GET {self.target} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded and not self._handshake():
            return
        self._frames()

    def _handshake(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1").lower()
        del self.buffer[: end + 4]
        accept = base64.b64encode(hashlib.sha1((self.key + WS_GUID).encode()).digest()).decode()
        if not head.startswith("http/1.1 101") or accept.lower() not in head:
            self.transport.close()
            raise ConnectionError(f"handshake refused: {head.splitlines()[0]}")
        self.upgraded = True
        channels = [f"market.{s}" for s in SYMBOLS]
        self.send(1, json.dumps({"op": "subscribe", "channels": channels, "id": self.i}).encode())
        return True

    def _frames(self) -> None:
        buffer, at = self.buffer, 0
        while len(buffer) - at >= 2:
            opcode, size, start = buffer[at] & 0x0F, buffer[at + 1] & 0x7F, at + 2
            if size == 126:
                size, start = int.from_bytes(buffer[start:start + 2], "big"), start + 2
            elif size == 127:
                size, start = int.from_bytes(buffer[start:start + 8], "big"), start + 8
            if len(buffer) < start + size:
                break  # (a server's frames are never masked nor, here, fragmented)
            payload = bytes(buffer[start:start + size])
            at = start + size
            if opcode == 1:
                self.clients.on_message(json.loads(payload), self.seen, self.i)
            elif opcode == 9:
                self.send(10, payload)
            elif opcode == 8:
                self.clients.stats["closed"] += 1
                self.transport.close()
        del buffer[:at]

    def send(self, opcode: int, payload: bytes) -> None:
        """Send one masked frame (clients must mask; payloads here are short)."""
        mask = os.urandom(4)
        masked = bytes(b ^ mask[n % 4] for n, b in enumerate(payload))
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
        self.transport.write(header + mask + masked)


async def client_main(url: str, count: int) -> None:
    """Connect ``count`` clients, say ``ready``, measure from ``go`` to ``stop``; print JSON."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}"
    loop = asyncio.get_running_loop()
    clients = Clients()
    protocols = []
    for i in range(count):
        _, protocol = await loop.create_connection(
            lambda i=i: LeanClient(clients, i, parts.netloc, target), parts.hostname, parts.port
        )
        protocols.append(protocol)
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # ramp: no thundering herd of handshakes
    deadline = time.monotonic() + 120
    while len(clients.ready) < count:
        gone = [p for p in protocols if p.lost.done()]
        if gone or time.monotonic() > deadline:
            raise RuntimeError(f"{len(gone)} clients lost, {len(clients.ready)} ready")
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    # "go <t>": messages published from t on count; "stop <t>": up to t. The server goes on
    # publishing (unmeasured) until every client has had one published after t, so each
    # message of the phase is counted however far behind a backed-up server delivers it.
    clients.go = float((await loop.run_in_executor(None, sys.stdin.readline)).split()[1])
    cpu = time.process_time()
    clients.stop = float((await loop.run_in_executor(None, sys.stdin.readline)).split()[1])
    deadline = time.monotonic() + 300
    while len(clients.past_stop) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    clients.stats["cpu_s"] = time.process_time() - cpu
    clients.stats["caught_up"] = len(clients.past_stop)
    print(json.dumps({"latencies": _summary(clients.latencies), **clients.stats}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the server has its figures
    for protocol in protocols:
        protocol.transport.close()


def _summary(samples: list[float]) -> dict:
    from bench.common import latency_summary

    return latency_summary(samples)


# ------------------------------------------------------------------------------ server


def setup() -> str:
    """Migrate a scratch SQLite database; return a viewer's API token."""
    from bench.common import setup_django

    setup_django()
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from marketdata.models import Symbol

    for name in SYMBOLS:
        base, quote = name.split("-")
        Symbol.objects.get_or_create(name=name, defaults={"base": base, "quote": quote})
    user = User.objects.create_user("bench-viewer", password=None)
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    return Token.objects.create(user=user).key


class Engine:
    """The order path at each tick, and the runtime's publish queue and broadcaster."""

    def __init__(self, rate: float) -> None:
        from bench.trading_order_path import build

        self.oms, self.symbols = build()
        self.rate = rate
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=10_000)
        self.dropped = 0
        self.n = 0

    def tick(self) -> None:
        from trading.engine.orders import OrderIntent, OrderSide

        i = self.n
        self.n += 1
        now = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(milliseconds=i)
        side = OrderSide.BUY if (i // 50) % 2 == 0 else OrderSide.SELL
        intent = OrderIntent(account="bench", symbol=self.symbols[i % 50], side=side,
                             quantity=Decimal("1.5"), strategy="bench")
        self.oms.submit(intent, now)  # risk check, OMS, paper fill, portfolio
        symbol = SYMBOLS[i % 2]
        quote = {"symbol": symbol, "ts": datetime.now(UTC).isoformat(), "bid": "100.01",
                 "bid_size": "1.5", "ask": "100.03", "ask_size": "2"}
        from monitoring.realtime import now_iso

        try:
            self.queue.put_nowait((f"market.{symbol}", "quote", quote, now_iso()))
        except asyncio.QueueFull:
            self.dropped += 1

    async def broadcaster(self, layer) -> None:
        from monitoring.realtime import apublish

        while True:
            channel, kind, data, ts = await self.queue.get()
            await apublish(layer, channel, kind, data, ts)

    async def run(self, seconds: float) -> list[float]:
        """Tick at ``rate`` for ``seconds``; return each tick's scheduled-start-to-order time."""
        latencies = []
        period = 1.0 / self.rate
        start = time.perf_counter()
        k = 0
        while (due := start + k * period) < start + seconds:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.tick()
            latencies.append(time.perf_counter() - due)
            k += 1
        return latencies


async def start_web_process(redis_url: str, port: int):
    """Start uvicorn serving rrr_site.asgi on ``port`` over Redis; return once it answers."""
    import urllib.request

    env = dict(os.environ, REDIS_URL=redis_url)
    web = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "rrr_site.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--lifespan", "off", "--backlog", "4096",
        cwd=ROOT, env=env,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            url = f"http://127.0.0.1:{port}/health"
            await asyncio.to_thread(urllib.request.urlopen, url, None, 2)
            return web
        except OSError:
            if time.monotonic() > deadline or web.returncode is not None:
                raise RuntimeError("the web process never answered") from None
            await asyncio.sleep(0.2)


def use_redis(redis_url: str) -> None:
    """Point this process's channel layer at Redis (the bench's setup cleared REDIS_URL)."""
    from channels.layers import channel_layers
    from django.conf import settings

    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # As the web process's (rrr_site/settings.py): the capacity is the sender's to enforce.
        "CONFIG": {"hosts": [redis_url], "prefix": "rrr",
                   "channel_capacity": {"stream-hub.*": 5000}},
    }}
    channel_layers.backends.clear()


async def server_main(args, token: str) -> dict:
    import socket

    import uvicorn
    from channels.layers import get_channel_layer

    from bench.common import latency_summary
    from rrr_site.asgi import application

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    web = server = serving = None
    if args.redis:  # scaled: the engine here, the clients' web server in its own process
        web = await start_web_process(args.redis, port)
    else:  # embedded: uvicorn on the engine's own loop, as runtrader --serve
        server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="off",
                                               backlog=4096))
        server.install_signal_handlers = lambda: None
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
    engine = Engine(args.rate)
    layer = get_channel_layer()
    broadcaster = asyncio.create_task(engine.broadcaster(layer))
    await engine.run(WARMUP_S)
    web_pid = web.pid if web is not None else None
    cpu, wall = cpu_now(web_pid), time.perf_counter()
    alone = latency_summary(await engine.run(args.seconds))
    cpu_alone, alone_wall = cpu_now(web_pid, since=cpu), time.perf_counter() - wall
    clients = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", f"ws://127.0.0.1:{port}/ws/v1/stream?token={token}",
        "--clients", str(args.clients),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
    )
    line = await asyncio.wait_for(clients.stdout.readline(), 300)
    assert line.strip() == b"ready", line
    await engine.run(WARMUP_S)  # snapshots and the first messages out of the way
    # Counted from a second ahead: the clients have read "go" before the first such message.
    go = time.time() + 1.0
    clients.stdin.write(f"go {go}\n".encode())
    await clients.stdin.drain()
    await engine.run(1.0)
    await asyncio.sleep(max(0.0, go - time.time()))  # the phase's first tick is stamped after go
    cpu, wall = cpu_now(web_pid), time.perf_counter()
    busy = latency_summary(await engine.run(args.seconds))
    clients.stdin.write(f"stop {time.time()}\n".encode())
    await clients.stdin.drain()
    # Go on ticking (unmeasured) until every client has had the phase's last message.
    draining = asyncio.create_task(engine.run(600))
    report = json.loads((await asyncio.wait_for(clients.stdout.readline(), 400)) or b"{}")
    draining.cancel()
    cpu_busy, busy_wall = cpu_now(web_pid, since=cpu), time.perf_counter() - wall
    clients.stdin.write(b"done\n")
    await clients.stdin.drain()
    await clients.wait()
    broadcaster.cancel()
    if server is not None:
        server.should_exit = True
        await serving
    if web is not None:
        web.terminate()
        await web.wait()
    return {"alone": alone, "busy": busy, "clients": report, "queue_dropped": engine.dropped,
            "cpu_alone": cpu_alone, "alone_wall": alone_wall, "cpu_busy": cpu_busy,
            "busy_wall": busy_wall}


def cpu_now(web_pid: int | None, since: tuple[float, float] | None = None) -> tuple[float, float]:
    """Return CPU seconds used by this process and the web process (0 when none), or since."""
    mine = time.process_time()
    web = 0.0
    if web_pid is not None:
        fields = Path(f"/proc/{web_pid}/stat").read_text().rsplit(")", 1)[1].split()
        web = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    if since is None:
        return mine, web
    return mine - since[0], web - since[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0, help="market updates per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="each measured phase")
    parser.add_argument("--redis", metavar="URL", help="scaled: publish through this Redis to "
                        "a separate uvicorn web process (e.g. redis://127.0.0.1:6379/9)")
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client_main(args.client, args.clients))
        return
    token = setup()
    if args.redis:
        use_redis(args.redis)
    print(f"load average before: {os.getloadavg()}")
    result = asyncio.run(server_main(args, token))
    print(f"load average after:  {os.getloadavg()}")
    report(args, result)


def report(args, result: dict) -> None:
    from bench.common import print_table

    alone, busy, clients = result["alone"], result["busy"], result["clients"]
    received = clients.get("latencies", {})
    expected = int(args.rate * args.seconds * args.clients)
    print_table(
        ["measure", "p50 ms", "p99 ms", "max ms", "samples"],
        [
            ["tick-to-order, no clients (reference)", alone["p50"], alone["p99"], alone["max"],
             alone["count"]],
            [f"tick-to-order, {args.clients} clients", busy["p50"], busy["p99"], busy["max"],
             busy["count"]],
            [f"publish-to-receive, {args.clients} clients", received.get("p50"),
             received.get("p99"), received.get("max"), received.get("count", 0)],
        ],
        title=f"WebSocket fan-out: {args.rate:g} updates/s on 2 symbols, {args.seconds:g} s "
              "per phase, " + ("scaled (Redis layer, uvicorn in its own process)" if args.redis
                               else "embedded (in-process layer, uvicorn in the engine's process)"),
    )
    ratio = busy["p99"] / alone["p99"] if alone["p99"] else float("nan")
    print(f"tick-to-order p99 with clients / without: {ratio:.2f}x (target <= 1.10)")
    print(f"publish-to-receive p99: {received.get('p99', float('nan')):.1f} ms (target < 100)")
    engine_alone = result["cpu_alone"][0] / result["alone_wall"]  # cores, ticking alone
    busy_wall = result["busy_wall"]
    line = (f"CPU, in cores busy: engine process {engine_alone:.2f} alone, "
            f"{result['cpu_busy'][0] / busy_wall:.2f} with clients")
    if args.redis:
        line += (f"; web process {result['cpu_alone'][1] / result['alone_wall']:.2f} alone, "
                 f"{result['cpu_busy'][1] / busy_wall:.2f} with clients")
    print(line + f"; client process {clients.get('cpu_s', float('nan')) / busy_wall:.2f} "
          f"(of {os.cpu_count()} cores; with clients: the phase and its delivery, "
          f"{busy_wall:.1f} s)")
    delivered = clients.get("messages", 0)
    if clients.get("deliveries"):
        fanout = result["cpu_busy"][0] - engine_alone * busy_wall + result["cpu_busy"][1]
        print(f"server CPU per message delivered to a client: "
              f"{fanout / clients['deliveries'] * 1e6:.1f} us "
              f"(the fan-out's cost beside the engine's own, whatever the machine's load)")
    print(f"messages of the phase received {delivered} of {expected}; "
          f"conflated drops told {clients.get('dropped', 0)}; "
          f"seq gaps not told {clients.get('gaps', 0)}; "
          f"engine publish-queue drops {result['queue_dropped']}; clients caught up "
          f"{clients.get('caught_up', 0)} of {args.clients}")


if __name__ == "__main__":
    main()
