"""The image's health check passes a healthy production web, and the services that serve no web.

The image checked ``http://127.0.0.1:8000/health``: in production Django refuses that host (400,
DisallowedHost: ALLOWED_HOSTS holds the site's names), so every web container was unhealthy and
logged a security error every 30 s; the qcluster and runtrader services (the same image) serve
nothing on 8000 and were unhealthy for ever too. Tested on a real uvicorn in production mode.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from rrr_site import healthcheck
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def production_web(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_ENV": "production",
        "SECRET_KEY": "k" * 50,
        "ALLOWED_HOSTS": ".rrr.example.com,other.example.com",
        "RRR_DATA_DIR": str(tmp_path),
    }
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    args = ["-m", "uvicorn", "rrr_site.asgi:application", "--host", "127.0.0.1"]
    web = subprocess.Popen(
        [sys.executable, *args, "--port", str(port), "--no-access-log"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: healthcheck.check_tcp(port, timeout=1), 120, "uvicorn to listen")
        yield port
    finally:
        web.terminate()
        web.wait(30)


def test_the_check_passes_a_production_web_that_refuses_its_bare_address(
    production_web, monkeypatch
) -> None:
    port = production_web
    monkeypatch.setenv("ALLOWED_HOSTS", ".rrr.example.com,other.example.com")
    # The first request loads the application (seconds on a loaded machine): poll.
    wait_for(lambda: healthcheck.main(["--port", str(port)]) == 0, 120, "a healthy verdict")
    with pytest.raises(urllib.error.HTTPError) as refused:  # what the image used to ask
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30)
    assert refused.value.code == 400


def test_the_check_fails_when_nothing_serves() -> None:
    port = free_port()
    assert healthcheck.main(["--port", str(port)]) == 1
    assert healthcheck.main(["--tcp", str(port)]) == 1


def test_the_port_check_passes_while_the_port_accepts() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert healthcheck.main(["--tcp", str(server.getsockname()[1])]) == 0


@pytest.mark.parametrize(
    ("allowed", "host"),
    [(".rrr.example.com,b.example", "rrr.example.com"), ("*", "localhost"), ("", "localhost"),
     (" *, rrr.example.com", "rrr.example.com")],
)  # fmt: skip
def test_the_host_asked_for_is_one_django_admits(allowed, host) -> None:
    assert healthcheck.web_host(allowed) == host


def test_services_of_the_image_without_a_web_check_their_metrics_port() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, service in services.items():
        if service.get("image", "").startswith("${RRR_IMAGE") and name not in {"web", "migrate"}:
            command = " ".join(service["command"])
            port = command.split("--metrics-port=")[1].split()[0]
            assert service["healthcheck"]["test"][-2:] == ["--tcp", port], name
    assert "healthcheck" not in services["web"]  # the image's own: GET /health
