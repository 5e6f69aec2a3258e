"""Hostile input answers 400 (or 404 for ids that are not yours), never 500, never data."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.django_db

HOSTILE_QUERIES = [
    "/api/v1/trades?symbol=BTC%00USD",
    "/api/v1/trades?start=99999-01-01T00:00:00Z",
    "/api/v1/trades?start=9999-12-31T23:59:59Z&end=9999-12-31T23:59:58Z",
    "/api/v1/trades?limit=100000",
    "/api/v1/trades?limit=-1",
    "/api/v1/trades?cursor=%00%00",
    "/api/v1/trades?cursor=WyJub3QtYS1kYXRlIiwgMV0",
    # forged cursors: a boolean id (SQL "id < true"), times whose UTC falls outside years 1-9999
    "/api/v1/trades?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIix0cnVlXQ",
    "/api/v1/orders?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIix0cnVlXQ",
    "/api/v1/trades?cursor=WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzE0OjAwIiw1XQ",
    "/api/v1/orders?cursor=WyI5OTk5LTEyLTMxVDIzOjU5OjU5LTE0OjAwIiw1XQ",
    "/api/v1/marketdata/symbols/BTC-USD/bars?timeframe=1m&cursor=0001-01-01T00:00:00%2B14:00",
    "/api/v1/marketdata/symbols/BTC-USD/bars?timeframe=1m&cursor=2026-02-30T00:00:00Z",
    "/api/v1/trades?account=99999999999999999999999",
    "/api/v1/portfolio?account=abc",
    "/api/v1/performance?bucket=1y",
    "/api/v1/performance/equity-curve?points=0",
    "/api/v1/performance/equity-curve?points=" + "9" * 5000,
    "/api/v1/profit/daily?count=100000",
    "/api/v1/ai/decisions?symbol=" + "A" * 10_000,
    "/api/v1/ai/decisions?start=2026-13-45",
    "/api/v1/ai/decisions?model=0",
    "/api/v1/backtests?status=%00",
    "/api/v1/backtests?sweep=-5",
    "/api/v1/trades/round-trips?offset=-1",
]


@pytest.mark.parametrize("url", HOSTILE_QUERIES)
def test_hostile_queries_answer_400(world, as_role, url):
    response = as_role("trader").get(url)
    assert response.status_code == 400, (url, response.status_code, response.content[:200])
    assert isinstance(response.json(), dict)  # field errors, never a traceback


def test_far_future_range_is_valid_and_empty(world, as_role):
    body = as_role("trader").get("/api/v1/trades?start=9999-12-30T00:00:00Z").json()
    assert body == {"next": None, "results": []}


def test_other_accounts_ids_are_404(world, as_role):
    client = as_role("trader")
    for url in (
        f"/api/v1/portfolio?account={world.other.pk}",
        f"/api/v1/trades?account={world.other.pk}",
        f"/api/v1/performance?account={world.other.pk}",
        f"/api/v1/profit/symbols?account={world.other.pk}",
        "/api/v1/portfolio?account=987654321",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "other" not in response.content.decode()


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,  # nested past the recursion limit
        '{"username": "a\\u0000", "password": "b"}',
        '{"username": NaN}',
        "\xff\xfe not json",
    ],
)
def test_hostile_bodies_answer_400(world, as_role, body):
    response = as_role("trader").post(
        "/api/v1/auth/token", body.encode("utf-8", "surrogateescape"),
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 400, response.status_code


@pytest.mark.parametrize("url", ["/api/v1/auth/token", "/api/v1/orders"])
def test_a_body_past_the_upload_limit_answers_413_in_json(world, as_role, url):
    from trading.models import Order

    before = Order.objects.count()
    body = json.dumps({"username": "a", "account": 1, "x": "a" * 3_000_000})
    response = as_role("trader").post(url, body, content_type="application/json")
    assert response.status_code == 413, response.status_code
    assert response["Content-Type"] == "application/json"
    assert "too large" in response.json()["detail"]
    assert Order.objects.count() == before
