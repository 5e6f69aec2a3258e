"""Fixtures of the backtesting tests: real ``qcluster`` processes on the Redis broker."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.polling import wait_for
from tests.qcluster_process import (
    cluster_env,
    qcluster_log,
    qcluster_running,
    qcluster_start,
    qcluster_stop_all,
)


class QclusterPool:
    """Starts production ``qcluster`` processes (one worker each) on this test's database and
    Redis db; the fixture stops, at teardown, any the test left running."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, **env: str) -> subprocess.Popen:
        """Start a cluster logging to ``<name>.log``, with ``env`` added to its environment."""
        cluster = qcluster_start({**self.env, **env}, self.logs / f"{name}.log")
        self.started.append(cluster)
        return cluster

    def wait_running(self, *clusters: subprocess.Popen) -> None:
        """Wait until every cluster says it is running; fail with their logs if one exits."""
        wait_for(lambda: all(qcluster_running(c) or c.poll() is not None for c in clusters), 180,
                 "the clusters to start")  # fmt: skip
        assert all(c.poll() is None for c in clusters), [qcluster_log(c) for c in clusters]


@pytest.fixture
def qclusters(subprocess_env, tmp_path) -> Iterator[QclusterPool]:
    """Real clusters on the Redis broker (skipped without REDIS_URL), the queue emptied first
    (leftovers of another run on this Redis db)."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (the Redis broker)")
    from django_q.brokers import get_broker

    get_broker().purge_queue()
    pool = QclusterPool(cluster_env(subprocess_env), tmp_path)
    yield pool
    qcluster_stop_all([c for c in pool.started if c.poll() is None], grace=60)
