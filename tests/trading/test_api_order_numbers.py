"""Order entry reads quantities and prices written in plain ASCII digits only: Python's Decimal
also takes "1_0" (10) and other scripts' digits, so a typo became a ten-times-larger order."""

from __future__ import annotations

import pytest

from tests.trading.test_api_orders import ORDER, paper, trader  # noqa: F401 (fixtures)
from trading.models import Order


@pytest.mark.parametrize(
    "field, value",
    [
        ("quantity", "1_0"),  # Decimal("1_0") == 10
        ("quantity", "0.0_1"),
        ("quantity", "\u0663"),  # ARABIC-INDIC DIGIT THREE
        ("quantity", "\uff11"),  # FULLWIDTH DIGIT ONE
        ("price", "49_900"),
        ("stop_loss", "4\u00b2"),  # SUPERSCRIPT TWO
    ],
)
def test_digits_other_than_plain_ascii_are_refused(paper, trader, field, value):  # noqa: F811
    body = {**ORDER, "account": paper.pk, "type": "limit", "price": "49900", field: value}
    response = trader.post("/api/v1/orders", body, format="json")
    assert response.status_code == 400, (value, response.status_code, response.content[:200])
    assert response.json()[field] == ["A valid number is required."]
    assert not Order.objects.exists()


@pytest.mark.parametrize("value", ["0.1", " 0.1 ", "1E-1", "1e-1", ".1", "+0.1", 0.1])
def test_plain_decimals_still_place_the_order(paper, trader, value):  # noqa: F811
    body = {**ORDER, "account": paper.pk, "type": "limit", "price": "49900", "quantity": value}
    response = trader.post("/api/v1/orders", body, format="json")
    assert response.status_code == 201, (value, response.content[:200])
    assert str(Order.objects.get().quantity) == "0.1000000000"


def test_an_algo_profile_is_read_the_same_way(paper, trader):  # noqa: F811
    body = {**ORDER, "account": paper.pk, "algo": "vwap", "duration": 60, "profile": ["1", "2_0"]}
    response = trader.post("/api/v1/orders", body, format="json")
    assert response.status_code == 400 and "profile" in response.json()
