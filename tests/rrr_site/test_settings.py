"""Settings read the environment: embedded default, DATABASE_URL/REDIS_URL, production hardening."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'db': settings.DATABASES['default']['ENGINE'], "
    "'db_name': str(settings.DATABASES['default']['NAME']), "
    "'layer': settings.CHANNEL_LAYERS['default']['BACKEND'], "
    "'cache': settings.CACHES['default']['BACKEND'], "
    "'q_redis': settings.Q_CLUSTER.get('redis'), 'q_orm': settings.Q_CLUSTER.get('orm'), "
    "'paper': settings.PAPER_TRADING, 'live': settings.LIVE_TRADING, "
    "'capital': str(settings.INITIAL_CAPITAL), 'pos': str(settings.MAX_POSITION_SIZE_PCT), "
    "'loss': str(settings.MAX_DAILY_LOSS_PCT), 'debug': settings.DEBUG}))"
)
CONTROLLED = {
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_ENV",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "INITIAL_CAPITAL",
    "MAX_POSITION_SIZE_PCT",
    "MAX_DAILY_LOSS_PCT",
    "LIVE_TRADING",
    "PAPER_TRADING",
    "DEBUG",
    "RRR_DATA_DIR",
    "METRICS_TOKEN",
    "METRICS_ALLOWED_NETWORKS",
}


def run_python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with only the given project variables set."""
    base = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    base.update({"DJANGO_SETTINGS_MODULE": "rrr_site.settings", "RRR_DATA_DIR": str(tmp_path)})
    base.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def probe(tmp_path: Path, **env: str) -> dict:
    """Return the settings a fresh process computes under ``env``."""
    result = run_python(PROBE, tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_default_needs_no_environment(tmp_path):
    found = probe(tmp_path)
    assert found["db"].endswith("sqlite3")
    assert found["db_name"] == str(tmp_path / "db" / "trading.db")
    assert found["layer"] == "monitoring.layers.InProcessChannelLayer"
    assert found["cache"].endswith("LocMemCache")
    assert found["q_orm"] == "default" and found["q_redis"] is None
    assert found["paper"] is True and found["live"] is False
    assert (found["capital"], found["pos"], found["loss"]) == ("100000", "0.20", "0.05")
    assert (tmp_path / "secret_key").exists(), "a dev secret key is generated into data/"


def test_dev_secret_key_is_generated_once(tmp_path):
    code = "import django; from django.conf import settings; print(settings.SECRET_KEY)"
    first = run_python(code, tmp_path).stdout.strip()
    second = run_python(code, tmp_path).stdout.strip()
    assert first == second and len(first) >= 50


def test_database_and_redis_urls_switch_backends(tmp_path):
    found = probe(
        tmp_path, DATABASE_URL="postgres://u@127.0.0.1:5432/x", REDIS_URL="redis://127.0.0.1:6379/3"
    )
    assert found["db"].endswith("postgresql")
    assert found["layer"] == "channels_redis.core.RedisChannelLayer"
    assert found["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert found["q_redis"] == "redis://127.0.0.1:6379/3" and found["q_orm"] is None


def test_trading_defaults_come_from_environment(tmp_path):
    found = probe(
        tmp_path,
        INITIAL_CAPITAL="2500.50",
        MAX_POSITION_SIZE_PCT="0.1",
        MAX_DAILY_LOSS_PCT="0.02",
        LIVE_TRADING="true",
    )
    assert (found["capital"], found["pos"], found["loss"]) == ("2500.50", "0.1", "0.02")
    assert found["live"] is True


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS"])
def test_production_refuses_to_start_without_secrets(tmp_path, missing):
    env = {"DJANGO_ENV": "production", "SECRET_KEY": "x" * 64, "ALLOWED_HOSTS": "rrr.example"}
    env.pop(missing)
    result = run_python("import django; django.setup()", tmp_path, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and missing in result.stderr


def test_production_check_deploy_is_clean(tmp_path):
    env = {
        "DJANGO_ENV": "production",
        "ALLOWED_HOSTS": "rrr.example",
        "SECRET_KEY": "k9#Qz!" + "vR2xL7pW4mN8bT1cY6hJ3gF5dS0aE" * 2,
    }
    code = (
        "import django; django.setup(); from django.core.management import call_command; "
        "call_command('check', '--deploy', '--fail-level', 'WARNING')"
    )
    result = run_python(code, tmp_path, **env)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "WARNINGS" not in result.stderr


@pytest.mark.parametrize("value", ["prd", "prod", "staging", "Production-1", ""])
def test_unknown_django_env_is_refused_with_the_allowed_values(tmp_path, value):
    result = run_python("import django; django.setup()", tmp_path, DJANGO_ENV=value)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"DJANGO_ENV={value!r}" in result.stderr
    assert "development, production" in result.stderr


@pytest.mark.parametrize("value", ["development", "Production"])
def test_known_django_env_values_start(tmp_path, value):
    env = {"DJANGO_ENV": value, "SECRET_KEY": "x" * 64, "ALLOWED_HOSTS": "rrr.example"}
    code = "import django; from django.conf import settings; print(settings.DEBUG)"
    result = run_python(code, tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(value == "development")


def test_malformed_metrics_network_is_refused(tmp_path):
    env = {"METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,not-a-network"}
    result = run_python("import django; django.setup()", tmp_path, **env)
    assert result.returncode != 0
    assert "METRICS_ALLOWED_NETWORKS" in result.stderr and "not-a-network" in result.stderr


POOL_PROBE = """
import django, psycopg
django.setup()
from django.db import connection
with connection.cursor() as c:
    c.execute("SELECT pg_backend_pid()")
    pid = c.fetchone()[0]
connection.close()  # back into the pool (of one)
kill = psycopg.connect({dsn!r}, autocommit=True)
kill.execute("SELECT pg_terminate_backend(%s)", [pid])
with connection.cursor() as c:  # a request after the server dropped the pooled connection
    c.execute("SELECT pg_backend_pid()")
    print("served by", c.fetchone()[0], "after", pid)
"""


@pytest.mark.django_db
def test_the_web_pool_replaces_a_connection_the_server_dropped(tmp_path):
    # DB_POOL_MAX_SIZE (the web process): a pooled connection PostgreSQL terminated while it sat
    # idle (restart, failover, pg_terminate_backend) must not be handed to the next request.
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    s = connection.settings_dict
    dsn = f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    result = run_python(
        POOL_PROBE.format(dsn=dsn), tmp_path, DATABASE_URL=dsn, DB_POOL_MAX_SIZE="1"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "served by" in result.stdout


def test_the_development_secret_key_is_one_complete_key_when_processes_start_at_once(tmp_path):
    """A fresh data folder and many starters at once (runtrader and its worker, two engines):
    each reads the same whole key; written in place, one read an empty file ("The SECRET_KEY
    setting must not be empty", CI) or two keys were made, the last one winning."""
    import threading

    from rrr_site.settings import _dev_secret_key

    for attempt in range(20):
        path = tmp_path / str(attempt) / "secret_key"
        start = threading.Barrier(8)
        keys: list[str] = []

        def read(start=start, keys=keys, path=path) -> None:
            start.wait()
            keys.append(_dev_secret_key(path))

        threads = [threading.Thread(target=read) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(keys) == 8 and len(set(keys)) == 1 and len(keys[0]) > 60, keys
        assert path.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no temporary left
