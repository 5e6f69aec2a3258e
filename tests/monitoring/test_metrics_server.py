"""``runtrader``/``ingest --metrics-port`` admit whom ``/metrics`` admits: a ``METRICS_TOKEN``
bearer, or an address in ``METRICS_ALLOWED_NETWORKS`` that came through no proxy.

prometheus-client's own server answered anyone who reached the port, so ``--metrics-host
0.0.0.0`` put every account's equity, cash and P&L in front of the network.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.error
import urllib.request

import pytest

from monitoring.metrics import PORTFOLIO, metrics_http_server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


@pytest.fixture
def served(settings):
    PORTFOLIO["equity"].labels("gate-test").set(123456.0)
    port = _free_port()
    server = metrics_http_server("127.0.0.1", port)
    yield port
    server.shutdown()
    server.server_close()


def test_loopback_is_served_and_a_proxied_request_is_not(served):
    status, text = _get(served)
    assert status == 200
    assert 'rrr_portfolio_equity{account="gate-test"} 123456.0' in text
    status, text = _get(served, {"X-Forwarded-For": "203.0.113.9"})
    assert status == 403
    assert "gate-test" not in text


def test_outside_the_allowed_networks_only_the_token_gets_in(served, settings):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    status, text = _get(served)
    assert status == 401
    assert "gate-test" not in text
    assert _get(served, {"Authorization": "Bearer wrong"})[0] == 401
    status, text = _get(served, {"Authorization": "Bearer s3cret-scrape-token"})
    assert status == 200
    assert "gate-test" in text


def test_without_a_token_outsiders_are_forbidden(served, settings):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]
    settings.METRICS_TOKEN = ""
    status, text = _get(served)
    assert status == 403
    assert "METRICS_ALLOWED_NETWORKS" in text


def test_the_port_serves_a_qcluster_childs_series_too(served, tmp_path, monkeypatch):
    # runtrader --serve --metrics-port: the port shows what its /metrics shows, the child's
    # job series included (written to files by the qcluster child's workers).
    import os
    import subprocess
    import sys

    from monitoring import worker_metrics

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    directory = worker_metrics.child_metrics_dir(tmp_path, wipe=True)
    try:
        script = (
            "from prometheus_client import Counter\n"
            "Counter('rrr_job_failures', 'f', ['func']).labels('child.task').inc(3)\n"
        )
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
        status, text = _get(served)
        assert status == 200
        assert 'rrr_job_failures_total{func="child.task"} 3.0' in text
        assert 'rrr_portfolio_equity{account="gate-test"} 123456.0' in text  # its own too
        status, text = _get_path(served, "/metrics?name[]=rrr_job_failures_total")
        assert 'func="child.task"' in text and "gate-test" not in text
    finally:
        worker_metrics.child_metrics_forget()
    status, text = _get(served)
    assert "child.task" not in text and "gate-test" in text


def _get_path(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.status, response.read().decode()
