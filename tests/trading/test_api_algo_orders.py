"""TWAP/VWAP orders through POST /api/v1/orders: a parent order_submit records for runtrader
to work (risk-checked like any order, idempotent, 400 for a bad algo request)."""

from __future__ import annotations

import pytest

from tests.trading.test_api_orders import _client, _user, paper  # noqa: F401 - fixtures
from trading.models import Order

pytestmark = pytest.mark.django_db
TWAP = {"symbol": "BTC-USD", "side": "buy", "quantity": "0.3", "algo": "twap", "duration": 600,
        "slices": 3}  # fmt: skip


@pytest.fixture
def trader(paper):  # noqa: F811
    return _client(_user("trader", "trader", paper))


def test_a_twap_parent_is_recorded_for_the_engine_with_its_spec(paper, trader):  # noqa: F811
    answer = trader.post(
        "/api/v1/orders", {**TWAP, "account": paper.pk}, format="json",
        headers={"Idempotency-Key": "twap-1"},
    )  # fmt: skip
    assert answer.status_code == 201, answer.json()
    order = Order.objects.get(pk=answer.json()["order"]["id"])
    assert order.status == "pending" and order.type == "market"
    algo = order.metadata["algo"]
    assert algo["kind"] == "twap" and float(algo["duration"]) == 600 and int(algo["slices"]) == 3
    again = trader.post(
        "/api/v1/orders", {**TWAP, "account": paper.pk}, format="json",
        headers={"Idempotency-Key": "twap-1"},
    )  # fmt: skip
    assert again.json()["order"]["id"] == order.pk and Order.objects.count() == 1


def test_a_vwap_parent_keeps_its_profile(paper, trader):  # noqa: F811
    body = {**TWAP, "account": paper.pk, "algo": "vwap", "profile": ["1", "2", "1"]}
    answer = trader.post("/api/v1/orders", body, format="json")
    assert answer.status_code == 201, answer.json()
    algo = Order.objects.get().metadata["algo"]
    assert algo["kind"] == "vwap" and [float(w) for w in algo["profile"]] == [1, 2, 1]


BAD = [
    ({"type": "limit", "price": "49000"}, "algo"),  # an algo parent works a market order
    ({"duration": None}, "duration"),
    ({"algo": "iceberg"}, "algo"),
    ({"algo": None, "duration": 60}, "algo"),  # duration without algo
    ({"duration": 0}, "duration"),
    ({"max_participation": "2"}, "max_participation"),
    ({"stop_loss": "48000"}, "stop_loss"),  # no bracket on a parent
]


def test_bad_algo_requests_are_400_and_store_nothing(paper, trader):  # noqa: F811
    for change, field in BAD:  # one account set-up for every case
        body = {k: v for k, v in {**TWAP, "account": paper.pk, **change}.items() if v is not None}
        answer = trader.post("/api/v1/orders", body, format="json")
        assert answer.status_code == 400 and field in answer.json(), (change, answer.json())
    assert not Order.objects.exists()
