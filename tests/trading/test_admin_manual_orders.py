"""Manual orders from the admin: submit, close a position, flatten an account; all audited."""

from __future__ import annotations

from decimal import Decimal

from monitoring.models import AuditLog
from trading.models import Order, Position


def test_the_admin_submits_an_order_through_order_submit(admin_client, paper) -> None:
    url = f"/admin/trading/account/{paper.pk}/submit-order/"
    page = admin_client.get(url)
    assert page.status_code == 200 and b"Submit order" in page.content
    assert url.encode() in admin_client.get(f"/admin/trading/account/{paper.pk}/change/").content
    response = admin_client.post(
        url,
        {"symbol": "BTC-USD", "side": "buy", "quantity": "0.25", "type": "limit",
         "price": "30000", "time_in_force": "gtc"},
    )  # fmt: skip
    assert response.status_code == 302, response.content[:2000]
    order = Order.objects.get()
    assert (order.side, order.quantity, order.type, order.price, order.status) == (
        "buy",
        Decimal("0.25"),
        "limit",
        Decimal("30000"),
        "pending",
    )
    assert order.strategy == "manual" and order.account == paper
    entry = AuditLog.objects.get(action="order.submit")
    assert entry.actor_repr == "root-admin" and Decimal(entry.after["quantity"]) == Decimal("0.25")


def test_a_refused_order_shows_why_and_writes_nothing(admin_client, paper) -> None:
    response = admin_client.post(
        f"/admin/trading/account/{paper.pk}/submit-order/",
        {"symbol": "BTC-USD", "side": "buy", "quantity": "1", "type": "limit",
         "time_in_force": "gtc"},  # a limit order without its price
    )  # fmt: skip
    assert response.status_code == 200 and b"order refused" in response.content
    assert not Order.objects.exists() and not AuditLog.objects.filter(action="order.submit")


def _hold(paper, symbol: str, quantity: str) -> Position:
    from django.utils import timezone

    from marketdata.models import Symbol

    return Position.objects.create(
        account=paper, symbol=Symbol.objects.get(name=symbol), quantity=Decimal(quantity),
        average_price=Decimal("100"), updated_at=timezone.now(),
    )  # fmt: skip


def test_close_selected_positions_submits_reduce_only_orders(admin_client, paper) -> None:
    long = _hold(paper, "BTC-USD", "2")
    _hold(paper, "ETH-USD", "-3")
    response = admin_client.post(
        "/admin/trading/position/",
        {"action": "close_selected", "_selected_action": [long.pk]},
    )
    assert response.status_code == 302
    order = Order.objects.get()
    assert (order.symbol.name, order.side, order.quantity, order.reduce_only) == (
        "BTC-USD",
        "sell",
        Decimal("2"),
        True,
    )
    assert AuditLog.objects.filter(action="order.submit", actor_repr="root-admin").count() == 1


def test_flatten_cancels_working_orders_and_closes_every_position(admin_client, paper) -> None:
    _hold(paper, "BTC-USD", "2")
    _hold(paper, "ETH-USD", "-3")
    admin_client.post(
        f"/admin/trading/account/{paper.pk}/submit-order/",
        {"symbol": "SOL-USD", "side": "buy", "quantity": "1", "type": "limit", "price": "5",
         "time_in_force": "gtc"},
    )  # fmt: skip
    response = admin_client.post(
        "/admin/trading/account/", {"action": "flatten", "_selected_action": [paper.pk]}
    )
    assert response.status_code == 302
    closing = Order.objects.filter(strategy="flatten")
    assert {(o.symbol.name, o.side, o.quantity) for o in closing} == {
        ("BTC-USD", "sell", Decimal("2")),
        ("ETH-USD", "buy", Decimal("3")),
    }
    assert Order.objects.get(strategy="manual").status == "cancelled"
    flatten = AuditLog.objects.get(action="account.flatten")
    assert flatten.actor_repr == "root-admin" and len(flatten.after["closing_orders"]) == 2
    assert AuditLog.objects.filter(action="order.cancel").count() == 1


def test_the_admin_submits_a_twap_parent_and_refuses_a_vwap_without_volume(admin_client, paper):
    url = f"/admin/trading/account/{paper.pk}/submit-order/"
    base = {"symbol": "BTC-USD", "side": "buy", "quantity": "1", "type": "market",
            "time_in_force": "gtc", "duration": "600", "slices": "10"}  # fmt: skip
    response = admin_client.post(url, {**base, "algo": "twap"})
    assert response.status_code == 302, response.content[:2000]
    parent = Order.objects.get()
    assert parent.metadata["algo"]["kind"] == "twap" and parent.metadata["algo"]["slices"] == 10
    assert parent.status == "pending"  # the account's runtrader starts it
    refused = admin_client.post(url, {**base, "algo": "vwap"})  # no stored 1m volume yet
    assert refused.status_code == 200 and b"order refused" in refused.content
    assert Order.objects.count() == 1
