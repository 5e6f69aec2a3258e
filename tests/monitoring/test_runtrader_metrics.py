"""``runtrader --metrics-port`` serves the engine's own series over HTTP while it trades."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from prometheus_client.parser import text_string_to_metric_families

from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.usefixtures("subprocess_env")
def test_runtrader_without_serve_exposes_its_metrics(subprocess_env):
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    port = _free_port()
    command = [
        sys.executable,
        "manage.py",
        "runtrader",
        "--paper",
        "--timeframe",
        "1s",
        "--strategy",
        "sma_cross",
        "--param",
        "fast=2",
        "--param",
        "slow=4",
        "--snapshot-interval",
        "1",
        "--heartbeat-interval",
        "1",
        "--speed",
        "30",
        "--duration",
        "60",
        "--metrics-port",
        str(port),
    ]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=subprocess_env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:

        def traded() -> bool:
            samples = _scrape(port)
            events = samples.get(("rrr_engine_events_total", (("account", "paper"),)), 0)
            equity = samples.get(("rrr_portfolio_equity", (("account", "paper"),)), 0)
            heartbeat = samples.get(
                ("rrr_engine_heartbeat_timestamp_seconds", (("account", "paper"),)), 0
            )
            return events > 0 and equity > 0 and heartbeat > 0

        wait_for(traded, timeout=90, what="the engine's series on --metrics-port")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert f"metrics on http://127.0.0.1:{port}/metrics" in out


@pytest.mark.usefixtures("subprocess_env")
def test_ingest_exposes_its_feed_series(subprocess_env):
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    port = _free_port()
    command = [
        sys.executable, "manage.py", "ingest", "--source", "sim", "--symbols", "BTC-USD",
        "--speed", "30", "--duration", "60", "--metrics-port", str(port),
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env=subprocess_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:

        def fed() -> bool:
            samples = _scrape(port)
            key = ("rrr_feed_messages_received_total", (("source", "sim"), ("symbol", "BTC-USD")))
            stored = samples.get(
                ("rrr_feed_rows_stored_total", (("source", "sim"), ("symbol", "BTC-USD"))), 0
            )
            return samples.get(key, 0) > 0 and stored > 0

        wait_for(fed, timeout=60, what="the feed's series on --metrics-port")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
