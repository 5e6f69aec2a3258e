"""Reads for monitoring: health of dependencies, recent events and audit history."""

from __future__ import annotations

from django.conf import settings
from django.db import connections

from monitoring.engine.health import CheckResult, component_checks, run_checks


def _database_check() -> str:
    """Run a trivial query on the default database."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connections["default"].vendor


def _redis_check() -> str:
    """Ping Redis with a short timeout."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return "pong"


def readiness_checks() -> list[CheckResult]:
    """Check the database, Redis when configured, and components running in this process."""
    checks = {"database": _database_check}
    if settings.REDIS_URL:
        checks["redis"] = _redis_check
    checks.update(component_checks())
    return run_checks(checks)


def component_results() -> list[CheckResult]:
    """Check only the components running in this process (engines): no I/O."""
    return run_checks(component_checks())
