"""``manage.py ingest`` against a local Polygon server: auth, malformed frames, reconnects, sim."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import OperationalError, connections

from marketdata.models import DataQualityEvent, TradeTick
from tests.fakes import FakePolygonServer, Script, polygon_trade, trade_frames
from tests.fakes.threaded import served

pytestmark = pytest.mark.timeout(60)

SAFETY_DURATION = "30"  # seconds; tests stop ingest with SIGINT long before this


def counts_line(output: str) -> dict[str, int]:
    """Parse the ``key=value ...`` line ingest prints when it stops."""
    line = next(x for x in output.splitlines() if x.startswith("received="))
    return {k: int(v) for k, v in (pair.split("=") for pair in line.split())}


def interrupt_when(predicate: Callable[[], bool], timeout: float = 20.0) -> threading.Thread:
    """Send SIGINT to this process (stopping ingest) once ``predicate`` holds."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    ready = predicate()
                except OperationalError:  # SQLite's shared test DB is briefly locked by writes
                    ready = False
                if ready:
                    os.kill(os.getpid(), signal.SIGINT)
                    return
                time.sleep(0.05)
        finally:
            connections.close_all()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def ingest_polygon(url: str, *extra: str) -> str:
    out = io.StringIO()
    call_command(
        "ingest",
        "--source",
        "polygon",
        "--symbols",
        "BTC-USD",
        "--url",
        url,
        "--api-key",
        "test-key",
        "--duration",
        SAFETY_DURATION,
        *extra,
        stdout=out,
    )
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_malformed_frames_are_quarantined_and_counted_while_good_trades_are_stored():
    good = trade_frames(60)
    bad = [
        "this is not json {",
        [{"ev": "XT", "pair": "BTC-USD", "t": 1_700_000_000_000, "x": 1}],  # no price, no size
        [polygon_trade(price=-5.0, i="negative")],
    ]
    frames = good[:20] + bad[:1] + good[20:40] + bad[1:] + good[40:]
    with served(FakePolygonServer(Script(frames=frames))) as server:
        watcher = interrupt_when(
            lambda: TradeTick.objects.count() == 60 and DataQualityEvent.objects.count() >= 3
        )
        out = ingest_polygon(server.url)
        watcher.join(5)
    counts = counts_line(out)
    assert counts["received"] == 63 and counts["malformed"] == 3 and counts["accepted"] == 60
    assert set(TradeTick.objects.values_list("trade_id", flat=True)) == {
        f"1:{n}" for n in range(60)
    }
    events = DataQualityEvent.objects.order_by("id")
    assert {(e.rule, e.verdict, e.source) for e in events} == {
        ("malformed", "quarantine", "polygon")
    }
    reasons = [e.reason for e in events]
    assert "invalid JSON" in reasons[0] and "this is not json" in events[0].payload["raw"]
    assert "missing field 'p'" in reasons[1]
    assert "'p' must be > 0" in reasons[2] and '"p":-5.0' in events[2].payload["raw"]


@pytest.mark.django_db(transaction=True)
def test_a_mid_stream_disconnect_reconnects_resubscribes_and_duplicates_nothing():
    script = Script(frames=trade_frames(200), drop_after=120, replay_overlap=30)
    with served(FakePolygonServer(script)) as server:
        watcher = interrupt_when(lambda: TradeTick.objects.count() >= 200)
        out = ingest_polygon(server.url)
        watcher.join(5)
        assert server.connections == 2
        assert server.subscriptions[1] == {"XT.BTC-USD", "XQ.BTC-USD", "XA.BTC-USD"}
        assert server.auth_attempts == 2
    counts = counts_line(out)
    # The 30 replayed trades were dropped by the client, so each trade was processed once.
    assert counts["reconnects"] == 1 and counts["received"] == 200
    assert TradeTick.objects.count() == 200
    assert sorted(
        int(t.split(":")[1]) for t in TradeTick.objects.values_list("trade_id", flat=True)
    ) == list(range(200))


def rejected_key(url: str) -> tuple[str, ...]:
    """``ingest`` arguments for the Polygon fake at ``url`` with a key it rejects."""
    return ("--source", "polygon", "--symbols", "BTC-USD", "--url", url,
            "--api-key", "wrong-key", "--duration", SAFETY_DURATION)  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_auth_failure_stops_at_once_with_a_clear_error():
    with served(FakePolygonServer(Script(frames=trade_frames(5)))) as server:
        out = io.StringIO()
        with pytest.raises(CommandError, match="authentication failed: Polygon rejected"):
            call_command("ingest", *rejected_key(server.url), stdout=out)
        assert server.auth_attempts == 1  # fatal: no retry loop against a rejecting venue
    assert TradeTick.objects.count() == 0


# -- as a real process --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A migrated file-based SQLite database for ingest subprocesses."""
    path = tmp_path_factory.mktemp("ingest-data")
    run_manage(path, "migrate", "--noinput", check=True)
    return path


def run_manage(data_dir: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= {"RRR_DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    manage = Path(settings.BASE_DIR) / "manage.py"
    return subprocess.run(
        [sys.executable, str(manage), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def test_auth_failure_exits_non_zero_with_the_reason(data_dir):
    with served(FakePolygonServer(Script(frames=trade_frames(5)))) as server:
        done = run_manage(data_dir, "ingest", *rejected_key(server.url))
    assert done.returncode == 1
    assert "CommandError: authentication failed: Polygon rejected the API key" in done.stderr


def test_sim_with_duration_prints_the_counts_line(data_dir):
    done = run_manage(
        data_dir,
        "ingest",
        "--source",
        "sim",
        "--symbols",
        "BTC-USD,ETH-USD",
        "--duration",
        "1",
        "--speed",
        "30",
    )
    assert done.returncode == 0, done.stderr
    counts = counts_line(done.stdout)
    assert {"received", "accepted", "flagged", "quarantined", "stored", "bars"} <= set(counts)
    assert counts["received"] > 0 and counts["stored"] > 0 and counts["malformed"] == 0
    assert counts["received"] == counts["accepted"] + counts["flagged"] + counts["quarantined"]
    with contextlib.closing(sqlite3.connect(data_dir / "db" / "trading.db")) as conn:
        trades = conn.execute("SELECT COUNT(*) FROM marketdata_tradetick").fetchone()[0]
        quotes = conn.execute("SELECT COUNT(*) FROM marketdata_quote").fetchone()[0]
    assert trades > 0 and quotes > 0 and trades + quotes <= counts["stored"]
