"""Writes for trading outside the real-time loop: accounts and operator actions on orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from monitoring.services import audit_record, broadcast
from trading.choices import OPEN_ORDER_STATUSES, AccountMode, OrderStatus, Venue
from trading.models import Account, Order


@transaction.atomic
def account_get_or_create(
    *,
    name: str,
    initial_capital: Decimal,
    mode: str = AccountMode.PAPER,
    venue: str = Venue.PAPER,
) -> tuple[Account, bool]:
    """Return the named account, creating it with ``initial_capital`` in cash if missing."""
    return Account.objects.get_or_create(
        name=name,
        defaults={
            "initial_capital": initial_capital,
            "cash": initial_capital,
            "mode": mode,
            "venue": venue,
        },
    )


@transaction.atomic
def orders_cancel(*, order_ids: list[int], actor: Any, reason: str = "operator") -> int:
    """Cancel the given orders that are still working (status only; the engine reconciles).

    Returns how many were cancelled. Each cancellation is audited and broadcast.
    """
    now = timezone.now()
    orders = list(
        Order.objects.select_for_update()
        .select_related("account")
        .filter(pk__in=order_ids, status__in=OPEN_ORDER_STATUSES)
    )
    for order in orders:
        before = {"status": order.status}
        order.status = OrderStatus.CANCELLED
        order.reject_reason = f"cancelled: {reason}"
        order.updated_at = order.closed_at = now
        order.save(update_fields=["status", "reject_reason", "updated_at", "closed_at"])
        audit_record(
            actor=actor,
            action="order.cancel",
            obj=order,
            before=before,
            after={"status": order.status, "reason": reason},
        )
        broadcast(
            "orders",
            "order",
            {
                "client_order_id": order.client_order_id,
                "status": order.status,
                "account": order.account.name,
            },
        )
    return len(orders)


def orders_cancel_open(*, account: Account, actor: Any, reason: str = "operator") -> int:
    """Cancel every working order of ``account``; return how many."""
    ids = list(account.orders.filter(status__in=OPEN_ORDER_STATUSES).values_list("pk", flat=True))
    return orders_cancel(order_ids=ids, actor=actor, reason=reason)
