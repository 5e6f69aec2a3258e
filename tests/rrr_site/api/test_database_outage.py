"""A database that is lost (PostgreSQL: the session terminated) or locked (SQLite: another
writer holds it) under a request answers 503 in JSON with Retry-After, never a 500 page."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from tests.rrr_site.api.conftest import bearer_client

pytestmark = pytest.mark.django_db(transaction=True)


def _break_the_database():
    """Make the request's next database use fail as a real outage does; return an undo."""
    other = connection.get_new_connection(connection.get_connection_params())
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        other.autocommit = True
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        other.close()
        return connection.close  # the terminated session: the next test connects afresh
    with connection.cursor() as cursor:  # wait 50 ms, not the configured 10 s, for the lock
        cursor.execute("PRAGMA busy_timeout=50")
    other.isolation_level = None
    other.execute("BEGIN EXCLUSIVE")
    return other.close


def test_a_lost_database_answers_503_in_json(world):
    from trading.models import Order

    client = bearer_client(world.users["trader"])
    body = {"account": world.paper.pk, "symbol": "BTC-USD", "side": "buy", "type": "market",
            "quantity": "0.001"}  # fmt: skip
    before = Order.objects.count()
    undo = _break_the_database()
    try:
        response = client.post("/api/v1/orders", body, format="json",
                                HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))  # fmt: skip
    finally:
        undo()
    assert response.status_code == 503, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "1"
    assert "database is unavailable" in response.json()["detail"]
    assert Order.objects.count() == before
