"""Requests served over ASGI (uvicorn, ``runtrader --serve``) leave no database connection open,
whatever ``CONN_MAX_AGE``: each runs on a thread that ends with it, so a kept connection would
only pile up (one PostgreSQL backend per recent request) until the garbage collector ran."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_finished
from django.db import connection, connections

from monitoring.db_connections import close_request_connections

REQUESTS = 6


async def _get(application, path: str) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
    }  # fmt: skip
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(20)
    while (await communicator.receive_output(20)).get("more_body"):
        pass
    await communicator.wait(20)
    return start["status"]


def _other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def _backends_after_requests(application) -> tuple[int, int]:
    """Serve REQUESTS readiness checks (they query the database); return backends before/after."""
    before = _other_backends()
    for _ in range(REQUESTS):
        assert asyncio.run(_get(application, "/health/ready")) in (200, 503)
    deadline = time.monotonic() + 10
    after = _other_backends()
    while after > before and time.monotonic() < deadline:
        time.sleep(0.05)
        after = _other_backends()
    return before, after


@pytest.fixture
def production_conn_max_age(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("counts PostgreSQL backends")
    from rrr_site.asgi import application

    # New connections (one per request thread) take the deployed default, not the tests' 0.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 60)
    gc.collect()
    gc.disable()  # what a lucky collection would hide
    try:
        yield application
    finally:
        gc.enable()
        gc.collect()


@pytest.mark.django_db(transaction=True)
def test_asgi_requests_close_their_connections(production_conn_max_age):
    before, after = _backends_after_requests(production_conn_max_age)
    assert after == before


@pytest.mark.django_db(transaction=True)
def test_without_the_receiver_each_request_leaves_a_connection_behind(production_conn_max_age):
    """The failure the receiver prevents (so the test above can fail)."""
    uid = "monitoring-close-request-connections"
    assert request_finished.disconnect(dispatch_uid=uid)
    try:
        before, after = _backends_after_requests(production_conn_max_age)
    finally:
        request_finished.connect(close_request_connections, dispatch_uid=uid)
    assert after - before == REQUESTS
