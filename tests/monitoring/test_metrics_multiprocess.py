"""With PROMETHEUS_MULTIPROC_DIR, series written by several processes are merged on export."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRITE = """
from monitoring import metrics
metrics.FEED_RECEIVED.labels("sim", "BTC-USD").inc({n})
metrics.portfolio_set("paper", {{"equity": {n}}})
metrics.ENGINE_HEARTBEAT.labels("paper").set({n})
"""
READ = """
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
print(generate_latest(registry).decode())
"""


def _python(code: str, env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, text=True, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_counters_add_up_and_gauges_keep_the_latest_or_max(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    _python(WRITE.format(n=2), env)
    _python(WRITE.format(n=5), env)
    text = _python(READ, env)
    assert 'rrr_feed_messages_received_total{source="sim",symbol="BTC-USD"} 7.0' in text
    assert 'rrr_portfolio_equity{account="paper"} 5.0' in text
    assert 'rrr_engine_heartbeat_timestamp_seconds{account="paper"} 5.0' in text


BATCHED = """
from monitoring.metrics import EngineMetrics, FeedMetrics
engine, feed = EngineMetrics("mp-batch"), FeedMetrics("mp-batch")
for _ in range({n}):
    engine.on_event(None)
    feed.received("BTC-USD", None, ())
{publish}
"""


def test_batched_counts_reach_the_files_on_publish_and_at_exit(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    _python(BATCHED.format(n=3, publish="engine.publish()"), env)  # the runtime's flush
    _python(BATCHED.format(n=4, publish=""), env)  # nothing published before exit
    text = _python(READ, env)
    assert 'rrr_engine_events_total{account="mp-batch"} 7.0' in text
    assert 'rrr_feed_messages_received_total{source="mp-batch",symbol="BTC-USD"} 7.0' in text
