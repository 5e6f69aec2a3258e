"""Stored TWAP/VWAP parents: what ``runtrader`` marks as it works them and reloads at restart.

A parent is an ``Order`` row whose ``metadata["algo"]`` holds its ``AlgoSpec``
(``trading.services.order_submit(..., algo=...)``). It is ``pending`` until the account's engine
starts it (``open``, with ``metadata["algo_started"]``), then ``filled``, or ``cancelled`` when the
schedule ended short or an operator cancelled it. Its children are ordinary orders whose ids
derive from the parent's (``trading.engine.algo_book.algo_child_id``): a restart finds the ones
already sent and resumes after them, so no child is ever sent twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from trading.choices import OrderStatus
from trading.engine.algo_book import algo_child_id
from trading.engine.algos import ExecutionAlgo
from trading.engine.orders import Order as EngineOrder
from trading.engine.orders import OrderIntent
from trading.models import Account, Order
from trading.persistence import account_fence, engine_order


@dataclass(frozen=True, slots=True)
class StoredAlgoParent:
    """A started parent to resume: the order, when it started and the children it sent."""

    order: EngineOrder
    started: datetime
    arrival: Decimal | None
    children: list[EngineOrder]


def algo_parent_order(intent: OrderIntent, algo: ExecutionAlgo, now: datetime) -> EngineOrder:
    """Return the row a parent started by a strategy is stored as: open, being worked from now.

    It goes into the engine's next batch, before the children it just sent, so the transaction
    that stores a child stores its parent too; a restart resumes it (``algo_parents_open``).
    """
    return EngineOrder(
        symbol=intent.symbol,
        side=intent.side,
        quantity=intent.quantity,
        type=intent.type,
        account=intent.account,
        client_order_id=intent.client_order_id,
        tif=intent.tif,
        status=OrderStatus.OPEN,
        strategy=intent.strategy,
        created_ts=now,
        updated_ts=now,
        metadata={
            **(intent.metadata or {}),
            "algo_started": algo.times[0].isoformat(),
            "algo_arrival": str(algo.arrival_price),
        },
    )


def is_algo_parent(metadata: dict | None) -> bool:
    """Return True when an order row is an algo parent (never a venue order itself)."""
    return bool(metadata) and "algo" in metadata


def algo_parents_open(account_name: str) -> list[StoredAlgoParent]:
    """Return the account's started, unfinished parents with their stored children."""
    rows = (
        Order.objects.filter(account__name=account_name, status=OrderStatus.OPEN)
        .select_related("symbol", "account", "parent")
        .order_by("created_at", "id")
    )
    parents = []
    for row in rows:
        meta = row.metadata or {}
        if not is_algo_parent(meta) or "algo_started" not in meta:
            continue
        parent = engine_order(row)
        ids = [
            uuid.UUID(algo_child_id(parent.client_order_id, n))
            for n in range(int(meta["algo"]["slices"]) + 1)
        ]
        children = [
            engine_order(c)
            for c in Order.objects.filter(client_order_id__in=ids).select_related(
                "symbol", "account", "parent"
            )
        ]
        started = datetime.fromisoformat(meta["algo_started"])
        arrival = Decimal(meta["algo_arrival"]) if meta.get("algo_arrival") else None
        parents.append(StoredAlgoParent(parent, started, arrival, children))
    return parents


@transaction.atomic
def algo_parent_started(client_order_id: str, started: datetime, arrival: Decimal) -> None:
    """Mark a pending parent as being worked from ``started`` (slippage measured from arrival)."""
    row = Order.objects.select_for_update().get(client_order_id=uuid.UUID(client_order_id))
    _fence_check(row.account_id)
    row.metadata = {
        **(row.metadata or {}),
        "algo_started": started.isoformat(),
        "algo_arrival": str(arrival),
    }
    row.status = OrderStatus.OPEN
    row.updated_at = timezone.now()
    row.save(update_fields=["metadata", "status", "updated_at"])


def algo_parent_finished(
    client_order_id: str, filled: Decimal, avg_price: Decimal | None, cancelled: bool
) -> None:
    """Record a parent's outcome: filled, or cancelled with what its children filled."""
    now = timezone.now()
    rows = Order.objects.filter(client_order_id=uuid.UUID(client_order_id))
    with transaction.atomic():
        for account_id in rows.values_list("account_id", flat=True):
            _fence_check(account_id)
        rows.update(
            status=OrderStatus.CANCELLED if cancelled else OrderStatus.FILLED,
            filled_quantity=filled,
            average_fill_price=avg_price,
            updated_at=now,
            closed_at=now,
        )


def _fence_check(account_id: int) -> None:
    """Refuse the write if this process was fenced out of the order's account (issue #21)."""
    name = Account.objects.values_list("name", flat=True).get(pk=account_id)
    fence = account_fence(name)
    if fence is not None:
        fence.check()
