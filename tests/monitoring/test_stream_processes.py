"""The stream from real processes: the engine publishes everything a page needs; on Redis a
``runtrader`` and a separate daphne process, without Redis ``runtrader --serve``.

Every message is validated against docs/websocket.schema.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import websockets
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from tests.factories import UserFactory
from tests.monitoring.stream_helpers import check
from tests.trading.test_runtrader_serve import free_port, get

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = ["market.BTC-USD", "orders", "fills", "portfolio", "risk", "system"]
pytestmark = pytest.mark.usefixtures("fast_password_hashing")


def viewer_token(paper) -> str:
    user = UserFactory(username="watcher")
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    paper.members.add(user)
    return Token.objects.create(user=user).key


def wait_http(port: int, proc: subprocess.Popen, path: str = "/health") -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            get(f"http://127.0.0.1:{port}{path}")
            return
        except OSError:
            assert time.monotonic() < deadline, "server never answered"
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.2)


async def collect(url: str, channels: list[str], wanted, timeout: float = 60) -> list[dict]:
    """Subscribe, then read (validating each message) until ``wanted(messages)`` holds."""
    messages: list[dict] = []
    async with websockets.connect(url, open_timeout=10) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channels": channels, "id": 1}))
        deadline = time.monotonic() + timeout
        while not wanted(messages):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; got {sorted(kinds(messages))}"
            messages.append(check(json.loads(await asyncio.wait_for(ws.recv(), left))))
    return messages


def kinds(messages: list[dict]) -> set[tuple[str, str]]:
    return {(m.get("channel", ""), m["type"]) for m in messages}


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def start_web_and_engine(env: dict, port: int) -> list[subprocess.Popen]:
    """Start the processes: on Redis a daphne web process and a separate ``runtrader``; without
    Redis, ``runtrader --serve`` (the engine and the web server in one process)."""
    engine = [sys.executable, "manage.py", "runtrader", "--paper", "--no-worker",
              "--timeframe", "1s", "--speed", "5", "--duration", "120",
              "--snapshot-interval", "1", "--heartbeat-interval", "1"]
    spawn = partial(subprocess.Popen, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    if not os.environ.get("REDIS_URL"):
        proc = spawn([*engine, "--serve", f"127.0.0.1:{port}"])
        wait_http(port, proc)
        return [proc]
    web = spawn([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                 "rrr_site.asgi:application"])
    procs = [web, spawn(engine)]  # both start at once: each takes seconds to import
    wait_http(port, web)
    return procs


def test_engine_publishes_every_channel_to_clients_of_the_web_process(subprocess_env, paper):
    """Every channel starts with its snapshot and goes on live; on Redis the engine and the web
    server are separate processes, so what the client gets crossed processes through Redis."""
    token = viewer_token(paper)
    port = free_port()
    procs = start_web_and_engine(subprocess_env, port)
    try:
        needed = {("market.BTC-USD", k) for k in ("snapshot", "trade", "quote", "bar")} | {
            (c, "snapshot") for c in CHANNELS[1:]} | {("portfolio", "portfolio"),
                                                      ("system", "heartbeat")}
        messages = asyncio.run(collect(f"ws://127.0.0.1:{port}/ws/v1/stream?token={token}",
                                       CHANNELS, lambda got: needed <= kinds(got)))
    finally:
        outcomes = [stop(proc) for proc in reversed(procs)]
    bars = [m["data"] for m in messages if m["type"] == "bar"]
    assert bars and all(b["symbol"] == "BTC-USD" for b in bars)
    portfolio = next(m["data"] for m in messages if m["type"] == "portfolio")
    assert portfolio["account"] == "paper" and "positions" in portfolio
    for channel in CHANNELS:  # per channel, seq counts 1, 2, 3... with the snapshot first
        seqs = [m["seq"] for m in messages if m.get("channel") == channel]
        if channel.startswith("market."):
            # A slow client (a loaded machine) gets market data conflated: the seq numbers of
            # the dropped messages are skipped, as docs/websocket.md says; never repeated.
            assert seqs[0] == 1 and seqs == sorted(set(seqs)), (channel, seqs)
        else:
            assert seqs == list(range(1, len(seqs) + 1)), (channel, seqs)
    engine = procs[-1]
    assert engine.returncode == 0, outcomes[0][1][-3000:]
