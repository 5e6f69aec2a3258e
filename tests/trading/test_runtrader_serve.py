"""``runtrader --serve`` serves the whole product; ``--live`` refuses without cause."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import websockets
from rest_framework.authtoken.models import Token

from tests.factories import UserFactory
from trading.models import PortfolioSnapshot

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, dict]:
    """GET a JSON document."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return response.status, json.loads(response.read())


async def first_bar(url: str) -> dict:
    """Return the first message a WebSocket subscriber receives."""
    async with websockets.connect(url, open_timeout=10,
                                  additional_headers={"Origin": "http://127.0.0.1"}) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 30))


def test_serve_dashboard_api_and_websockets_while_trading(subprocess_env, paper):
    token = Token.objects.create(user=UserFactory(username="ws"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runtrader", "--paper", "--serve", f"127.0.0.1:{port}",
         "--timeframe", "1s", "--speed", "5", "--duration", "120"],
        cwd=ROOT, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = get(f"http://127.0.0.1:{port}/health")
                break
            except OSError:
                assert time.monotonic() < deadline, "server never answered"
                assert proc.poll() is None, proc.stderr.read()[-2000:]
                time.sleep(0.2)
        assert status == 200 and body["status"] == "ok"
        ready_status, ready = get(f"http://127.0.0.1:{port}/health/ready")
        assert ready_status == 200 and ready["checks"]["database"]["ok"]
        message = asyncio.run(first_bar(
            f"ws://127.0.0.1:{port}/ws/market.BTC-USD/?token={token.key}"))
        assert message["kind"] == "bar" and message["data"]["symbol"] == "BTC-USD"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "events=" in out
    assert PortfolioSnapshot.objects.filter(account=paper).exists(), "final snapshot on stop"


def test_live_refuses_and_names_every_missing_condition(subprocess_env, paper):
    result = subprocess.run([sys.executable, "manage.py", "runtrader", "--live"], cwd=ROOT,
                            env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "LIVE_TRADING is not true" in result.stderr
    assert "not live" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--strategy", "nope"], "unknown strategy"),
    (["--param", "fast"], "key=value"),
    (["--account", "ghost"], "no account"),
    (["--feed", "polygon", "--symbols", "BTC-USD"], "POLYGON_API_KEY"),
])
def test_bad_arguments_exit_non_zero_with_a_message(subprocess_env, paper, args, message):
    env = dict(subprocess_env, POLYGON_API_KEY="")
    result = subprocess.run([sys.executable, "manage.py", "runtrader", "--paper", *args],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and message in result.stderr
