"""Durable record of the trading engine: load state at start, write batches atomically.

The runtime cuts a ``TradingBatch`` on the event loop (orders that changed, new fills, the
positions and cash *after* those fills) and hands it to ``TradingStore.write`` on the writer
thread, which stores it in **one transaction**. The database therefore always holds a consistent
prefix of the engine's history: positions equal the sum of the stored fills, cash agrees with
them, and a SIGKILL at any moment loses nothing that was acknowledged (broadcasts go out only
after the commit). Fills are deduplicated on (order, venue trade id), orders upserted on their
client order id, so writing a batch twice is harmless.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import types
import typing
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any

from django.db import DatabaseError, DataError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from marketdata.models import Symbol
from trading.choices import OPEN_ORDER_STATUSES
from trading.engine.oms import OrderManager
from trading.engine.orders import Fill as EngineFill
from trading.engine.orders import Order as EngineOrder
from trading.engine.portfolio import PortfolioSnapshot as EngineSnapshot
from trading.engine.portfolio import PositionSnapshot
from trading.models import Account, AccountOwner, Fill, Order, PortfolioSnapshot, Position

logger = logging.getLogger(__name__)

ORDER_UPDATE_FIELDS = [
    "venue_order_id",
    "parent",
    "quantity",
    "price",
    "stop_price",
    "status",
    "filled_quantity",
    "average_fill_price",
    "fees",
    "reject_reason",
    "metadata",
    "updated_at",
    "closed_at",
]
POSITION_UPDATE_FIELDS = [
    "quantity",
    "average_price",
    "cost_basis",
    "mark_price",
    "realized_pnl",
    "unrealized_pnl",
    "fees",
    "opened_at",
    "closed_at",
    "updated_at",
]


@dataclass(slots=True)
class TradingBatch:
    """Everything that changed since the last write, captured at one instant on the loop."""

    account: str
    orders: list[EngineOrder] = field(default_factory=list)  # copies, not live objects
    fills: list[EngineFill] = field(default_factory=list)
    positions: list[PositionSnapshot] = field(default_factory=list)
    cash: Decimal | None = None
    snapshots: list[EngineSnapshot] = field(default_factory=list)
    ts: datetime | None = None

    def __bool__(self) -> bool:
        return bool(self.orders or self.fills or self.positions or self.snapshots)

    def absorb(self, newer: TradingBatch) -> None:
        """Merge a later batch into this unwritten one, so both are stored in one transaction.

        Orders and positions are states (the later copy wins); fills and snapshots are events
        (all are kept, in order); cash is the state after the later batch.
        """
        by_id = {o.client_order_id: o for o in self.orders}
        by_id.update((o.client_order_id, o) for o in newer.orders)
        self.orders = list(by_id.values())
        self.fills.extend(newer.fills)
        by_symbol = {p.symbol: p for p in self.positions}
        by_symbol.update((p.symbol, p) for p in newer.positions)
        self.positions = list(by_symbol.values())
        if newer.cash is not None:
            self.cash = newer.cash
        self.snapshots.extend(newer.snapshots)
        self.ts = newer.ts or self.ts


@dataclass(slots=True)
class AccountState:
    """What a restart reloads for one account."""

    account: Account
    cash: Decimal
    positions: list[PositionSnapshot]
    open_orders: list[EngineOrder]
    realized_pnl: Decimal
    fees: Decimal
    peak_equity: Decimal | None
    day_start_equity: Decimal | None


def _uuid(value: str) -> uuid.UUID:
    """Return the UUID form of an engine client order id (hex or canonical)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _unsent(row: Order) -> bool:
    """Whether ``row`` is an API/admin order on a paper account that no engine ever placed.

    A live account's pending orders are always restored: the exchange may hold one its engine
    sent just before it died, and only the bridge's reconcile (by client id) can tell.
    """
    return (
        row.status == "pending"
        and row.account.mode == "paper"
        and row.parent_id is None
        and not row.venue_order_id
        and row.cancel_requested_at is None
        and (row.metadata or {}).get("source") == "api"
    )


def engine_order(row: Order) -> EngineOrder:
    """Rebuild an engine order from its row (used at restart)."""
    meta = dict(row.metadata or {})
    return EngineOrder(
        symbol=row.symbol.name,
        side=row.side,
        quantity=row.quantity,
        type=row.type,
        account=row.account.name,
        client_order_id=row.client_order_id.hex,
        price=row.price,
        stop_price=row.stop_price,
        trail_amount=row.trail_amount,
        trail_percent=row.trail_percent,
        tif=row.time_in_force,
        reduce_only=row.reduce_only,
        status=row.status,
        filled_quantity=row.filled_quantity,
        avg_fill_price=row.average_fill_price,
        fees=row.fees,
        venue_order_id=row.venue_order_id,
        strategy=row.strategy,
        signal=row.signal,
        parent_id=row.parent.client_order_id.hex if row.parent_id else "",
        oco_group=meta.pop("oco_group", ""),
        triggered=bool(meta.pop("triggered", False)),
        created_ts=row.created_at,
        updated_ts=row.updated_at,
        reject_reason=row.reject_reason,
        metadata=meta,
    )


# ----------------------------------------------------------------- fencing


class OwnershipError(DatabaseError):
    """The account's trading state may not be written by this process now.

    A ``DatabaseError``: the engine keeps the refused batch unsaved (the transaction wrote
    nothing), lets the account only reduce risk and never sends an order it could not store.
    """


class OwnershipSuspended(OwnershipError):
    """The account lock was lost and is not taken back yet: nothing is written meanwhile."""


class OwnershipLost(OwnershipError):
    """Another process took the account (its epoch moved on): this one must never write again."""


class AccountFence:
    """This process's fencing token for one account: the epoch it raised taking the lock.

    ``check()`` runs first in every transaction of ``TradingStore.write`` and keeps the owner
    row locked until the commit: ``SELECT ... WHERE account = ? AND epoch = ? FOR SHARE``
    (PostgreSQL; an UPDATE of the row on SQLite, whose writers take the database lock). A takeover
    (``take``) raises the epoch with an UPDATE of that row, so it waits for a write in flight
    and every later write by this process finds the epoch moved and is refused whole.
    Refusals are sticky: once lost, the database is not asked again.
    """

    def __init__(self, account_id: int, account_name: str, epoch: int, owner: str) -> None:
        self.account_id = account_id
        self.account_name = account_name
        self.epoch = epoch
        self.owner = owner
        self.suspended = False
        self.lost: OwnershipLost | None = None
        self.on_lost: Any = None  # called once (from the thread that found it) when lost
        table = AccountOwner._meta.db_table
        if connection.vendor == "postgresql":
            # A row lock without a new row version: an UPDATE per batch of one hot row grows
            # its version chain whenever any long transaction holds back pruning.
            self._sql = f"SELECT 1 FROM {table} WHERE account_id = %s AND epoch = %s FOR SHARE"  # noqa: S608
        else:  # SQLite: the UPDATE takes the database's write lock first (no upgrade deadlock)
            self._sql = f"UPDATE {table} SET epoch = epoch WHERE account_id = %s AND epoch = %s"  # noqa: S608

    @classmethod
    def take(cls, account: Account, owner: str) -> AccountFence:
        """Raise the account's epoch (call while holding its lock) and register the fence."""
        with transaction.atomic():
            AccountOwner.objects.get_or_create(account_id=account.pk)
            AccountOwner.objects.filter(account_id=account.pk).update(
                epoch=F("epoch") + 1, owner=owner[:200], acquired_at=timezone.now()
            )
            epoch = AccountOwner.objects.values_list("epoch", flat=True).get(account_id=account.pk)
        fence = cls(account.pk, account.name, epoch, owner)
        _FENCES[account.name] = fence
        return fence

    def release(self) -> None:
        """Stop fencing this account's writes in this process (the engine stopped)."""
        if _FENCES.get(self.account_name) is self:
            del _FENCES[self.account_name]

    def check(self) -> None:
        """Raise unless this process still owns the account; call inside the write transaction."""
        if self.lost is not None:
            raise self.lost
        if self.suspended:
            raise OwnershipSuspended(
                f"lost the lock of account {self.account_name!r}; nothing is written or sent "
                "until it is taken back"
            )
        with connection.cursor() as cursor:
            cursor.execute(self._sql, (self.account_id, self.epoch))
            if cursor.rowcount == 1:  # the row locked (PostgreSQL) or updated (SQLite)
                return
        self._lose()
        raise self.lost

    def confirm(self) -> bool:
        """After the lock is taken back: True if nobody took the account meanwhile."""
        epochs = AccountOwner.objects.filter(account_id=self.account_id)
        if epochs.values_list("epoch", flat=True).first() == self.epoch:
            self.suspended = False
            return True
        self._lose()
        return False

    def _lose(self) -> None:
        row = AccountOwner.objects.filter(account_id=self.account_id).first()
        now = f"epoch {row.epoch}, taken by {row.owner or 'another process'}" if row else "gone"
        self.lost = OwnershipLost(
            f"lost the lock of account {self.account_name!r}: another engine owns it now "
            f"({now}; ours was epoch {self.epoch}); refusing every write so that no second "
            "engine trades it"
        )
        logger.critical("%s", self.lost)
        callback, self.on_lost = self.on_lost, None
        if callback is not None:
            try:
                callback()
            except Exception:  # an engine already stopping (its loop closed): the refusal stands
                logger.exception("account %s: could not signal the lost fence", self.account_name)


_FENCES: dict[str, AccountFence] = {}  # account name -> this process's fence


def account_fence(account_name: str) -> AccountFence | None:
    """Return this process's fence of the account, if it took one."""
    return _FENCES.get(account_name)


# A fill written twice (a batch retried after its commit was lost) is stored once: the second
# meets ``fill_dedup_key`` and is skipped. SQLite's ``INSERT OR IGNORE`` (what ``ignore_conflicts``
# is there) also skips a row that breaks a CHECK or NOT NULL constraint, without a word: a fill
# of quantity 0 vanished where PostgreSQL refused it. There the dedup key alone is the conflict,
# and the no-op update makes the rest raise.
_FILL_DEDUP = {
    False: {"ignore_conflicts": True},
    True: {
        "update_conflicts": True,
        "unique_fields": ["order", "venue_trade_id"],
        "update_fields": ["venue_trade_id"],
    },
}


class TradingStore:
    """Loads and writes one account's trading state. Use from one thread."""

    def __init__(self, account_name: str) -> None:
        self.account_name = account_name
        self._symbols: dict[str, int] = {}
        self._order_pks: dict[str, int] = {}
        self._account: Account | None = None

    @property
    def account(self) -> Account:
        """Return the account row (cached)."""
        if self._account is None:
            self._account = Account.objects.get(name=self.account_name)
        return self._account

    def symbol_pk(self, name: str) -> int:
        """Return the Symbol id for ``name``."""
        if name not in self._symbols:
            self._symbols[name] = Symbol.objects.values_list("pk", flat=True).get(name=name)
        return self._symbols[name]

    # ----------------------------------------------------------------- loading

    def load(self) -> AccountState:
        """Return cash, positions, open orders and P&L figures stored for the account."""
        account = Account.objects.get(name=self.account_name)
        self._account = account
        rows = list(account.positions.select_related("symbol"))
        # Flat positions too: their realised P&L and fees must carry on when the symbol trades
        # again, or the stored totals would restart from zero.
        positions = [
            PositionSnapshot(
                p.symbol.name,
                p.quantity,
                p.average_price,
                p.mark_price,
                p.realized_pnl,
                p.fees,
                p.cost_basis if p.cost_basis or not p.quantity else None,
            )
            for p in rows
        ]
        orders = [
            engine_order(o)
            for o in account.orders.filter(status__in=OPEN_ORDER_STATUSES)
            .select_related("symbol", "account", "parent")
            .order_by("created_at", "id")
            if "algo" not in (o.metadata or {})  # algo parents: resumed by the AlgoBook
            # Never sent (an API/admin order the last engine had not picked up when it died):
            # submitted by the control poll like any new one, risk-checked once prices flow,
            # not re-placed on an empty book at start-up (the paper venue cancelled it).
            and not _unsent(o)
        ]
        for order in orders:
            self._order_pks[order.client_order_id] = None  # resolved lazily
        last = account.snapshots.order_by("-ts").first()
        today = timezone.now().date()
        return AccountState(
            account=account,
            cash=account.cash,
            positions=positions,
            open_orders=orders,
            realized_pnl=sum((p.realized_pnl for p in rows), Decimal(0)),
            fees=sum((p.fees for p in rows), Decimal(0)),
            peak_equity=self._peak_equity(account),
            day_start_equity=(
                last.equity - last.daily_pnl
                if last is not None and last.ts.date() == today
                else None
            ),
        )

    @staticmethod
    def _peak_equity(account: Account) -> Decimal | None:
        from django.db.models import Max

        return account.snapshots.aggregate(peak=Max("equity"))["peak"]

    def pending_api_orders(self, known: set[str]) -> list[EngineOrder]:
        """Return orders created outside the loop (API/admin) that the engine does not know."""
        rows = (
            self.account.orders.filter(status="pending", cancel_requested_at__isnull=True)
            .select_related("symbol", "account", "parent")
            .order_by("created_at", "id")
        )
        return [engine_order(r) for r in rows if r.client_order_id.hex not in known]

    def cancel_requests(self, known: set[str]) -> list[str]:
        """Return client ids of working orders an operator asked to cancel."""
        rows = self.account.orders.filter(
            status__in=OPEN_ORDER_STATUSES, cancel_requested_at__isnull=False
        )
        return [cid.hex for cid in rows.values_list("client_order_id", flat=True)]

    # ----------------------------------------------------------------- writing

    @transaction.atomic
    def write(self, batch: TradingBatch) -> None:
        """Store a batch in one transaction."""
        account = self.account
        fence = _FENCES.get(self.account_name)
        if fence is not None:  # first, so a takeover waits for this batch or refuses it whole
            fence.check()
        now = batch.ts or timezone.now()
        if batch.orders:
            self._write_orders(batch.orders, now)
        if batch.fills:
            self._write_fills(batch.fills)
        if batch.positions:
            self._write_positions(batch.positions, now)
        if batch.cash is not None:
            Account.objects.filter(pk=account.pk).update(cash=batch.cash, updated_at=now)
        for snapshot in batch.snapshots:
            self._write_snapshot(snapshot, now)
        self._forget_finished(batch.orders)

    def _write_orders(self, orders: list[EngineOrder], now: datetime) -> None:
        rows = [self._order_row(o, now) for o in orders]
        parents = {o.client_order_id: o.parent_id for o in orders if o.parent_id}
        Order.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["client_order_id"],
            update_fields=[f for f in ORDER_UPDATE_FIELDS if f != "parent"],
        )
        ids = [_uuid(o.client_order_id) for o in orders] + [_uuid(p) for p in parents.values()]
        for cid, pk in Order.objects.filter(client_order_id__in=ids).values_list(
            "client_order_id", "pk"
        ):
            self._order_pks[cid.hex] = pk
        for child, parent in parents.items():
            if self._order_pks.get(parent):
                Order.objects.filter(pk=self._order_pks[child]).update(
                    parent_id=self._order_pks[parent]
                )

    def _forget_finished(self, orders: list[EngineOrder]) -> None:
        """Drop the cached row ids of orders stored final.

        The cache holds working orders only, so it does not grow with every order of a long
        session; a late fill of a forgotten order is looked up again (``_write_fills``).
        """
        for order in orders:
            if order.is_terminal:
                self._order_pks.pop(order.client_order_id, None)

    def _order_row(self, o: EngineOrder, now: datetime) -> Order:
        meta = dict(o.metadata)
        if o.oco_group:
            meta["oco_group"] = o.oco_group
        if o.triggered:
            meta["triggered"] = True
        terminal = o.is_terminal
        return Order(
            account_id=self.account.pk,
            symbol_id=self.symbol_pk(o.symbol),
            client_order_id=_uuid(o.client_order_id),
            venue_order_id=o.venue_order_id,
            side=o.side.value,
            type=o.type.value,
            time_in_force=o.tif.value,
            quantity=o.quantity,
            price=o.price,
            stop_price=o.stop_price,
            trail_amount=o.trail_amount,
            trail_percent=o.trail_percent,
            reduce_only=o.reduce_only,
            status=o.status.value,
            filled_quantity=o.filled_quantity,
            average_fill_price=o.avg_fill_price,
            fees=o.fees,
            strategy=o.strategy[:64],
            signal=o.signal[:128],
            reject_reason=o.reject_reason,
            metadata=meta,
            created_at=o.created_ts or now,
            updated_at=o.updated_ts or now,
            closed_at=(o.updated_ts or now) if terminal else None,
        )

    def _write_fills(self, fills: list[EngineFill]) -> None:
        missing = [_uuid(f.order_id) for f in fills if not self._order_pks.get(f.order_id)]
        if missing:
            for cid, pk in Order.objects.filter(client_order_id__in=missing).values_list(
                "client_order_id", "pk"
            ):
                self._order_pks[cid.hex] = pk
        Fill.objects.bulk_create(
            [
                Fill(
                    order_id=self._order_pks[f.order_id],
                    account_id=self.account.pk,
                    symbol_id=self.symbol_pk(f.symbol),
                    side=f.side.value,
                    quantity=f.quantity,
                    price=f.price,
                    fee=f.fee,
                    liquidity=f.liquidity.value,
                    venue_trade_id=f.venue_trade_id,
                    ts=f.ts,
                )
                for f in fills
            ],
            **_FILL_DEDUP[connection.vendor == "sqlite"],
        )

    def _write_positions(self, positions: list[PositionSnapshot], now: datetime) -> None:
        existing = {p.symbol_id: p for p in self.account.positions.all()}
        rows = []
        for snap in positions:
            sid = self.symbol_pk(snap.symbol)
            old = existing.get(sid)
            mark = snap.mark_price
            opened = old.opened_at if old is not None and old.quantity != 0 else None
            rows.append(
                Position(
                    account_id=self.account.pk,
                    symbol_id=sid,
                    quantity=snap.quantity,
                    average_price=snap.avg_price if snap.quantity else Decimal(0),
                    cost_basis=snap.cost_basis
                    if snap.cost_basis is not None
                    else snap.quantity * snap.avg_price,
                    mark_price=mark,
                    realized_pnl=snap.realized_pnl,
                    fees=snap.fees,
                    unrealized_pnl=(mark - snap.avg_price) * snap.quantity
                    if mark is not None
                    else Decimal(0),
                    opened_at=opened or (now if snap.quantity else None),
                    closed_at=None if snap.quantity else now,
                    updated_at=now,
                )
            )
        Position.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["account", "symbol"],
            update_fields=POSITION_UPDATE_FIELDS,
        )

    def _write_snapshot(self, snap: EngineSnapshot, now: datetime) -> None:
        initial = self.account.initial_capital or Decimal(1)
        positions_value = snap.equity - snap.cash
        day_start = snap.day_start_equity or snap.equity
        PortfolioSnapshot.objects.update_or_create(
            account_id=self.account.pk,
            ts=snap.ts or now,
            defaults={
                "cash": snap.cash,
                "positions_value": positions_value,
                "total_value": snap.equity,
                "equity": snap.equity,
                "gross_exposure": snap.gross_exposure,
                "net_exposure": snap.net_exposure,
                "realized_pnl": snap.realized_pnl,
                "unrealized_pnl": snap.unrealized_pnl,
                "total_pnl": snap.equity - initial,
                "daily_pnl": snap.daily_pnl,
                "total_return": float(snap.equity / initial - 1),
                "daily_return": float(snap.equity / day_start - 1) if day_start else 0.0,
                "drawdown": float(snap.drawdown),
            },
        )


@dataclass(slots=True)
class PersistenceHealth:
    """Whether the engine's trading state reaches the database, and what waits if not."""

    failing_since: datetime | None = None
    errors: int = 0
    last_error: str = ""
    recoveries: int = 0
    unsaved_fills: int = 0
    unsaved_orders: int = 0

    @property
    def ok(self) -> bool:
        """Return True while writes succeed."""
        return self.failing_since is None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-able view (heartbeats, health)."""
        return {
            "ok": self.ok,
            "failing_since": self.failing_since.isoformat() if self.failing_since else None,
            "errors": self.errors,
            "last_error": self.last_error,
            "recoveries": self.recoveries,
            "unsaved_fills": self.unsaved_fills,
            "unsaved_orders": self.unsaved_orders,
        }


class Recorder:
    """OMS listener: remembers what changed until the next batch is cut.

    ``seen`` holds the ids of the orders this engine handles whose final state is not stored
    yet (the control poll must not take one for a new API order); ``stored`` forgets the ones a
    committed batch finished, so it stays as small as the working set over a long session.
    """

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.symbols: set[str] = set()
        self.new_orders = 0
        self.rejected = 0
        self.seen: set[str] = set()

    def stored(self, batch: TradingBatch) -> None:
        """Forget the orders ``batch`` (committed) stored in a final state."""
        for order in batch.orders:
            if order.is_terminal:
                self.seen.discard(order.client_order_id)

    def on_order(self, order: Order) -> None:
        """Mark ``order`` dirty."""
        self.orders[order.client_order_id] = order
        self.symbols.add(order.symbol)
        if order.client_order_id not in self.seen:
            self.seen.add(order.client_order_id)
            self.new_orders += 1
            self.rejected += order.status.value == "rejected"

    def on_algo_parent(self, parent: Order) -> None:
        """Store a TWAP/VWAP parent (not an OMS order: no new-order count) with this batch."""
        self.orders[parent.client_order_id] = parent
        self.symbols.add(parent.symbol)

    def on_fill(self, fill: Fill) -> None:
        """Queue ``fill``."""
        self.fills.append(fill)
        self.symbols.add(fill.symbol)

    def cut(self, oms: OrderManager, account: str, now: datetime) -> TradingBatch:
        """Return a batch of copies of everything changed, with positions and cash after it."""
        portfolio = oms.portfolio(account)
        positions = []
        for symbol in self.symbols:
            pos = portfolio.position(symbol)
            if pos is None:
                positions.append(PositionSnapshot(symbol, Decimal(0), Decimal(0)))
            else:
                positions.append(pos.snapshot())
        orders = []
        for order in self.orders.values():
            clone = copy.copy(order)
            clone.metadata = dict(order.metadata)
            orders.append(clone)
        batch = TradingBatch(
            account=account,
            orders=orders,
            fills=self.fills,
            positions=positions,
            cash=portfolio.cash,
            ts=now,
        )
        self.orders, self.fills, self.symbols = {}, [], set()
        return batch


# ----------------------------------------------------------------- refusals and dumps

SQLITE_CONSTRAINT_TRIGGER = 1811  # a trigger's RAISE(ABORT): a block, like PostgreSQL's P0001


def refused_for_good(exc: BaseException) -> bool:
    """Whether the database refused the data itself, so that writing it again cannot succeed.

    A constraint the schema declares (CHECK, NOT NULL, UNIQUE, foreign key) or a value the
    column cannot hold (``IntegrityError``, ``DataError``). Everything else is an outage that may
    end (connection lost, database locked, serialization failure, timeout) and is retried, and so
    is an exception a trigger raises (an operator's or a test's block, PostgreSQL's P0001, SQLite's
    RAISE) and a fence refusal (``OwnershipError``: handled by the fence).
    """
    if isinstance(exc, OwnershipError) or not isinstance(exc, (IntegrityError, DataError)):
        return False
    return getattr(exc.__cause__, "sqlite_errorcode", None) != SQLITE_CONSTRAINT_TRIGGER


def db_error_detail(exc: BaseException) -> dict[str, Any]:
    """Return what the database said: its message in full, and on PostgreSQL the SQLSTATE, the
    constraint, table and column, and the detail (``Failing row contains (...)``)."""
    detail: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc).strip()}
    diag = getattr(exc.__cause__, "diag", None)
    if diag is not None:
        for name in ("sqlstate", "constraint_name", "table_name", "column_name", "message_detail"):
            value = getattr(diag, name, None)
            if value:
                detail[name] = value
    return detail


def as_json(value: Any) -> Any:
    """Return ``value`` (records, batches) as JSON data; Decimals exact, as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [as_json(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class _Rollback(Exception):
    """Undo a probe transaction."""


def _find_refused(store: TradingStore, batch: TradingBatch) -> dict[str, Any] | None:
    """Return the first record of ``batch`` the database refuses for good, written one at a time
    in the order ``TradingStore.write`` takes them, inside a transaction that is rolled back.

    None if every record goes in alone (the refusal came from their combination).
    """
    now = batch.ts or timezone.now()
    steps: list[tuple[str, Any, Any]] = [
        ("order", o, partial(store._write_orders, [o], now)) for o in batch.orders
    ]
    steps += [("fill", f, partial(store._write_fills, [f])) for f in batch.fills]
    steps += [("position", p, partial(store._write_positions, [p], now)) for p in batch.positions]
    if batch.cash is not None:
        steps.append(
            (
                "cash",
                {"account": batch.account, "cash": batch.cash},
                lambda: Account.objects.filter(pk=store.account.pk).update(cash=batch.cash),
            )
        )
    steps += [("snapshot", s, partial(store._write_snapshot, s, now)) for s in batch.snapshots]
    cached = dict(store._order_pks)  # rows this probe inserts are rolled back
    found = None
    try:
        with transaction.atomic():
            for kind, record, write in steps:
                try:
                    with transaction.atomic():
                        write()
                except DatabaseError as exc:
                    if not refused_for_good(exc):
                        raise
                    found = {"kind": kind, "record": as_json(record), **db_error_detail(exc)}
                    break
            raise _Rollback
    except _Rollback:
        pass
    finally:
        store._order_pks = cached
    return found


def refused_record(store: TradingStore, batch: TradingBatch) -> dict[str, Any] | None:
    """``_find_refused`` on the database thread; None also if the probe itself failed."""
    try:
        return _find_refused(store, batch)
    except Exception:
        logger.exception("could not find which record of the batch the database refused")
        return None


def unsaved_dump(
    batch: TradingBatch | None, *, reason: str, refused: dict | None, directory: Path
) -> Path:
    """Write the trading state the database did not take to ``directory`` as JSON; return it.

    ``batch`` holds every order (its last state), fill, position, the cash and snapshots not
    stored, in the engine's order; ``refused`` the record the database refused and its error.
    The file is written whole or not at all (a temporary file renamed).
    """
    now = datetime.now(UTC)
    data = {
        "account": batch.account if batch is not None else None,
        "written_at": now.isoformat(),
        "reason": reason,
        "refused": refused,
        "batch": as_json(batch) if batch is not None else None,
    }
    directory.mkdir(parents=True, exist_ok=True)
    account = (batch.account if batch is not None else "engine").replace("/", "_")
    path = directory / f"{account}-{now:%Y%m%dT%H%M%S%fZ}.json"
    tmp = path.with_suffix(".json.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        json.dump(data, out, indent=1)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    return path


def from_json(cls: type, data: Any) -> Any:
    """Rebuild a record of type ``cls`` (an engine dataclass, a Decimal, ...) from ``as_json``."""
    if data is None:
        return None
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return cls(
            **{
                f.name: from_json(hints[f.name], data[f.name])
                for f in dataclasses.fields(cls)
                if f.init and f.name in data
            }
        )
    origin, args = typing.get_origin(cls), typing.get_args(cls)
    if origin in (typing.Union, types.UnionType):
        return from_json(next(a for a in args if a is not type(None)), data)
    if origin in (list, tuple):
        items = [from_json(args[0], item) for item in data]
        return tuple(items) if origin is tuple else items
    if cls is Decimal:
        return Decimal(data)
    if cls is datetime:
        return datetime.fromisoformat(data)
    if isinstance(cls, type) and issubclass(cls, Enum):
        return cls(data)
    return data


def batch_from_json(data: dict) -> TradingBatch:
    """Return the ``TradingBatch`` an ``unsaved_dump`` file holds (its ``batch``)."""
    return from_json(TradingBatch, data)
