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
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=60)
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
