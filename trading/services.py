"""Writes for trading outside the real-time loop: accounts and operator actions on orders."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from marketdata.models import Symbol
from monitoring.models import SystemEvent
from monitoring.services import audit_record, broadcast
from monitoring.stream_selectors import order_payload
from trading.choices import OPEN_ORDER_STATUSES, AccountMode, OrderStatus, Venue
from trading.engine.orders import Order as EngineOrder
from trading.engine.orders import validate_order
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


RUNTIME_HEARTBEAT_STALE = timedelta(seconds=45)


def runtime_alive(*, account: Account) -> bool:
    """Return True if a ``runtrader`` for ``account`` sent a heartbeat recently."""
    since = timezone.now() - RUNTIME_HEARTBEAT_STALE
    return SystemEvent.objects.filter(
        component="runtrader", kind="heartbeat", ts__gte=since, context__account=account.name
    ).exists()


@transaction.atomic
def orders_cancel(*, order_ids: list[int], actor: Any, reason: str = "operator") -> int:
    """Cancel the given working orders; return how many were cancelled or asked to cancel.

    When a ``runtrader`` runs the account, the request is recorded (``cancel_requested_at``) and
    the engine cancels at the venue, so the order's status only ever moves forward. With no
    engine running, the order is cancelled in the database directly. Each action is audited.
    """
    now = timezone.now()
    orders = list(
        Order.objects.select_for_update()
        .select_related("account")
        .filter(pk__in=order_ids, status__in=OPEN_ORDER_STATUSES)
    )
    alive: dict[int, bool] = {}
    for order in orders:
        if order.account_id not in alive:
            alive[order.account_id] = runtime_alive(account=order.account)
        before = {"status": order.status}
        if alive[order.account_id]:
            order.cancel_requested_at = now
            order.save(update_fields=["cancel_requested_at"])
            after = {"status": order.status, "cancel_requested": True, "reason": reason}
        else:
            order.status = OrderStatus.CANCELLED
            order.reject_reason = f"cancelled: {reason}"
            order.updated_at = order.closed_at = order.cancel_requested_at = now
            order.save(
                update_fields=[
                    "status",
                    "reject_reason",
                    "updated_at",
                    "closed_at",
                    "cancel_requested_at",
                ]
            )
            after = {"status": order.status, "reason": reason}
            broadcast("orders", "order", order_payload(order))
        audit_record(actor=actor, action="order.cancel", obj=order, before=before, after=after)
    return len(orders)


def orders_cancel_open(*, account: Account, actor: Any, reason: str = "operator") -> int:
    """Cancel every working order of ``account``; return how many."""
    ids = list(account.orders.filter(status__in=OPEN_ORDER_STATUSES).values_list("pk", flat=True))
    return orders_cancel(order_ids=ids, actor=actor, reason=reason)


@transaction.atomic
def order_submit(
    *,
    account: Account,
    symbol: str,
    side: str,
    quantity: Decimal,
    type: str = "market",
    price: Decimal | None = None,
    stop_price: Decimal | None = None,
    trail_amount: Decimal | None = None,
    trail_percent: Decimal | None = None,
    time_in_force: str = "gtc",
    reduce_only: bool = False,
    strategy: str = "",
    actor: Any = None,
    client_order_id: uuid.UUID | None = None,
    algo: str | None = None,
    duration: float | None = None,
    slices: int | None = None,
    profile: list | None = None,
    max_participation: Decimal | None = None,
) -> Order:
    """Record a new order for the running engine to risk-check and send (idempotent on id).

    The order is validated by the engine's rules first (``OrderRejected`` with the reason); it is
    stored as ``pending`` and the ``runtrader`` of the account picks it up within a second.
    With ``algo="twap"|"vwap"`` (market orders; ``duration`` in seconds, optional ``slices``,
    VWAP ``profile``, ``max_participation``) it is a parent the engine works in children over
    that time (``trading.algo_persistence``); a bad request raises ``AlgoConfigError``.
    """
    metadata: dict[str, Any] = {"source": "api"}
    if algo is not None:
        metadata["algo"] = _algo_spec(algo, type, duration, slices, profile, max_participation)
    symbol_row = Symbol.objects.get(name=symbol)
    if client_order_id is not None:
        existing = Order.objects.filter(client_order_id=client_order_id).first()
        if existing is not None:
            return existing
    candidate = EngineOrder(
        symbol=symbol,
        side=side,
        quantity=Decimal(quantity),
        type=type,
        account=account.name,
        price=price,
        stop_price=stop_price,
        trail_amount=trail_amount,
        trail_percent=trail_percent,
        tif=time_in_force,
        reduce_only=reduce_only,
    )
    validate_order(candidate)
    now = timezone.now()
    order = Order.objects.create(
        account=account,
        symbol=symbol_row,
        client_order_id=client_order_id or uuid.uuid4(),
        side=side,
        type=type,
        time_in_force=time_in_force,
        quantity=candidate.quantity,
        price=price,
        stop_price=stop_price,
        trail_amount=trail_amount,
        trail_percent=trail_percent,
        reduce_only=reduce_only,
        strategy=strategy,
        metadata=metadata,
        created_at=now,
        updated_at=now,
    )
    audit_record(
        actor=actor,
        action="order.submit",
        obj=order,
        before=None,
        after={
            "side": side,
            "quantity": str(order.quantity),
            "type": type,
            "symbol": symbol,
            **({"algo": metadata["algo"]} if algo is not None else {}),
        },
    )
    return order


def _algo_spec(
    algo: str,
    type: str,
    duration: float | None,
    slices: int | None,
    profile: list | None,
    max_participation: Decimal | None,
) -> dict[str, Any]:
    """Return a parent's validated algo request (``AlgoConfigError`` when it is not one)."""
    from trading.engine.algo_book import AlgoSpec
    from trading.engine.errors import AlgoConfigError

    if type != "market":
        raise AlgoConfigError("an algo parent works a market order")
    if duration is None:
        raise AlgoConfigError(f"{algo} needs a duration")
    spec = AlgoSpec.from_request(
        algo,
        duration=duration,
        slices=slices,
        profile=profile,
        max_participation=max_participation,
    )
    return spec.to_metadata()


def order_cancel(*, order: Order, actor: Any, reason: str = "operator") -> bool:
    """Cancel one working order (see ``orders_cancel``); return False if it was not working."""
    return orders_cancel(order_ids=[order.pk], actor=actor, reason=reason) == 1


def position_close(*, account: Account, symbol: str, actor: Any) -> Order | None:
    """Submit a reduce-only market order that flattens ``symbol``; None when already flat."""
    position = account.positions.filter(symbol__name=symbol).first()
    if position is None or position.quantity == 0:
        return None
    side = "sell" if position.quantity > 0 else "buy"
    return order_submit(
        account=account,
        symbol=symbol,
        side=side,
        quantity=abs(position.quantity),
        reduce_only=True,
        actor=actor,
        strategy="flatten",
    )


def account_flatten(*, account: Account, actor: Any) -> list[Order]:
    """Cancel every working order and close every position of ``account``."""
    orders_cancel_open(account=account, actor=actor, reason="flatten")
    closing = []
    for symbol in account.positions.exclude(quantity=0).values_list("symbol__name", flat=True):
        order = position_close(account=account, symbol=symbol, actor=actor)
        if order is not None:
            closing.append(order)
    from risk.services import manual_action_record

    reason = f"{len(closing)} closing order(s)"
    manual_action_record(account=account, action="flatten", actor=actor, reason=reason)
    return closing
