"""The admin's order form reads numbers as the API does: plain ASCII digits only ("1_0" was 10)."""

from __future__ import annotations

import pytest

from trading.models import Order


@pytest.mark.parametrize("field, value", [("quantity", "1_0"), ("quantity", "\u0663"),
                                          ("price", "30_000")])  # fmt: skip
def test_the_admin_form_refuses_other_digits(admin_client, paper, field, value) -> None:
    body = {"symbol": "BTC-USD", "side": "buy", "quantity": "0.25", "type": "limit",
            "price": "30000", "time_in_force": "gtc", field: value}  # fmt: skip
    response = admin_client.post(f"/admin/trading/account/{paper.pk}/submit-order/", body)
    assert response.status_code == 200  # the form again, with the error
    assert b"Enter a number." in response.content
    assert not Order.objects.exists()


def test_the_admin_form_still_takes_plain_decimals(admin_client, paper) -> None:
    body = {"symbol": "BTC-USD", "side": "buy", "quantity": " 2.5E-1 ", "type": "limit",
            "price": "30000", "time_in_force": "gtc"}  # fmt: skip
    response = admin_client.post(f"/admin/trading/account/{paper.pk}/submit-order/", body)
    assert response.status_code == 302
    assert str(Order.objects.get().quantity) == "0.2500000000"
