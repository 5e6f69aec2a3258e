"""Health, readiness and metrics endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rrr_site import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_health_reports_status_and_version(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["version"] == __version__


@pytest.mark.django_db
def test_ready_checks_the_database(client, settings):
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["database"]["ok"] is True
    assert ("redis" in body["checks"]) == bool(settings.REDIS_URL)


def test_ready_is_503_when_the_database_is_unreachable(tmp_path):
    code = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client().get('/health/ready'); print(json.dumps([r.status_code, r.json()]))"
    )
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="rrr_site.settings",
        RRR_DATA_DIR=str(tmp_path),
        DATABASE_URL="postgres://nobody@127.0.0.1:9/nowhere",
        REDIS_URL="",
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    status, body = json.loads(result.stdout.strip().splitlines()[-1])
    assert status == 503
    assert body["status"] == "unavailable" and body["checks"]["database"]["ok"] is False


def test_ready_is_503_when_redis_is_unreachable(client, settings, db):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False


@pytest.mark.django_db
def test_metrics_are_exposed_in_prometheus_format(client):
    client.get("/health")
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "django_http_requests_total_by_method_total" in text
    assert "django_db_execute_total" in text or "django_db_new_connections_total" in text


@pytest.mark.django_db
def test_dashboard_requires_login(admin_client):
    from django.test import Client

    assert Client().get("/").status_code == 302
    page = admin_client.get("/")
    assert page.status_code == 200 and b"Accounts" in page.content
