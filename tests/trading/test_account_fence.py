"""The account fence: a write of trading state commits only under the epoch its engine took.

``AccountFence.take`` raises the account's epoch (the engine holds the account lock then);
``TradingStore.write`` checks it first in its transaction. A write by an engine whose epoch
moved on (another took the account) is refused whole and for good; while the lock is lost
(suspended) nothing is written, and a lock taken back resumes only if the epoch did not move.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from tests.trading.test_runtrader_gate import row_counts
from trading.engine.orders import Order as EngineOrder
from trading.engine.orders import OrderSide, OrderStatus
from trading.models import Account, AccountOwner, Order
from trading.persistence import (
    AccountFence,
    OwnershipLost,
    OwnershipSuspended,
    TradingBatch,
    TradingStore,
    account_fence,
)

TS = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@pytest.fixture
def fence(paper):
    taken = AccountFence.take(paper, "pid 1 on test")
    yield taken
    taken.release()


def batch(cash: str, *, order: bool = True) -> TradingBatch:
    orders = [
        EngineOrder(symbol="BTC-USD", side=OrderSide.BUY, quantity=Decimal("0.1"),
                    account="paper", status=OrderStatus.OPEN, created_ts=TS, updated_ts=TS)
    ] if order else []
    return TradingBatch(account="paper", orders=orders, cash=Decimal(cash), ts=TS)


def take_over(account: Account, owner: str = "pid 2 on elsewhere") -> None:
    """What another engine's ``AccountFence.take`` does to the row (it holds the lock then)."""
    AccountOwner.objects.filter(account=account).update(epoch=F("epoch") + 1, owner=owner)


def test_each_take_raises_the_epoch_and_names_the_owner(paper):
    first = AccountFence.take(paper, "pid 1 on a")
    second = AccountFence.take(paper, "pid 2 on b")
    try:
        assert second.epoch == first.epoch + 1
        row = AccountOwner.objects.get(account=paper)
        assert (row.epoch, row.owner) == (second.epoch, "pid 2 on b")
        assert account_fence("paper") is second
    finally:
        second.release()
        first.release()  # not the registered one any more: leaves it alone
    assert account_fence("paper") is None


def test_the_owner_writes_and_a_fenced_out_one_writes_nothing_ever(paper, fence):
    store = TradingStore("paper")
    lost = []
    fence.on_lost = lambda: lost.append(True)
    store.write(batch("999"))
    assert Account.objects.get(pk=paper.pk).cash == Decimal("999")
    take_over(paper)
    before = row_counts()
    refused = r"lost the lock of account 'paper'.*pid 2 on elsewhere"
    with pytest.raises(OwnershipLost, match=refused):
        store.write(batch("1"))
    assert row_counts() == before
    assert Account.objects.get(pk=paper.pk).cash == Decimal("999")
    assert lost == [True]
    # Sticky: the refusal needs no database and never flips back, even if the epoch did.
    AccountOwner.objects.filter(account=paper).update(epoch=fence.epoch)
    with CaptureQueriesContext(connection) as queries, pytest.raises(OwnershipLost):
        store.write(batch("2"))
    assert not [q for q in queries if "accountowner" in q["sql"].lower()]
    assert Account.objects.get(pk=paper.pk).cash == Decimal("999")
    assert lost == [True]  # signalled once


def test_while_suspended_nothing_is_written_and_a_lock_taken_back_resumes(paper, fence):
    store = TradingStore("paper")
    fence.suspended = True
    before = row_counts()
    with pytest.raises(OwnershipSuspended, match="lost the lock of account 'paper'"):
        store.write(batch("5"))
    assert row_counts() == before
    assert fence.confirm() is True  # nobody took the account meanwhile
    store.write(batch("5"))
    assert Account.objects.get(pk=paper.pk).cash == Decimal("5")
    assert Order.objects.filter(account=paper).count() == 1


def test_a_lock_taken_back_after_another_owned_the_account_is_refused(paper, fence):
    store = TradingStore("paper")
    fence.suspended = True
    take_over(paper)
    assert fence.confirm() is False
    with pytest.raises(OwnershipLost):
        store.write(batch("7", order=False))
    assert Account.objects.get(pk=paper.pk).cash == paper.cash


def test_a_refusal_is_a_database_error_so_the_engine_keeps_the_batch(paper, fence):
    from trading.runtime import DB_ERRORS

    fence.suspended = True
    with pytest.raises(DB_ERRORS):
        TradingStore("paper").write(batch("3"))


def test_stores_of_other_accounts_or_without_a_fence_are_not_checked(paper):
    store = TradingStore("paper")
    with CaptureQueriesContext(connection) as queries:
        store.write(batch("11", order=False))
    assert not [q for q in queries if "accountowner" in q["sql"].lower()]
    assert Account.objects.get(pk=paper.pk).cash == Decimal("11")


@pytest.mark.django_db(transaction=True)
def test_a_takeover_waits_for_a_write_in_flight_then_fences_every_later_one(paper, fence):
    """The check locks the owner row to the commit: a take waits, then later writes fail."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers on the database lock (one writer at a time)")
    store = TradingStore("paper")
    checked, release, taken = threading.Event(), threading.Event(), threading.Event()

    def writer() -> None:
        try:
            with transaction.atomic():
                fence.check()
                checked.set()
                release.wait(10)
                Account.objects.filter(pk=paper.pk).update(cash=Decimal("42"))
        finally:
            connections.close_all()

    def taker() -> None:
        try:
            take_over(paper)
            taken.set()
        finally:
            connections.close_all()

    first = threading.Thread(target=writer)
    first.start()
    assert checked.wait(10)
    second = threading.Thread(target=taker)
    second.start()
    assert not taken.wait(0.5), "the takeover did not wait for the write in flight"
    release.set()
    first.join(10)
    second.join(10)
    assert taken.is_set()
    assert Account.objects.get(pk=paper.pk).cash == Decimal("42")  # committed before the take
    with pytest.raises(OwnershipLost):
        store.write(batch("1", order=False))
    assert Account.objects.get(pk=paper.pk).cash == Decimal("42")


def test_a_fenced_out_engine_changes_no_trading_state_and_closes_no_algo_parent(paper, fence):
    """The engine's other writes check the fence too: risk events and trading-state changes
    (RuntimeControl.flush_risk) and an algo parent's start and outcome; one fenced out must not
    halt, reduce or close anything of the engine that took the account."""
    from marketdata.models import Symbol
    from risk.engine.events import ModeChangeRequest
    from risk.models import RiskEvent, TradingState
    from trading.algo_persistence import algo_parent_finished, algo_parent_started
    from trading.engine.hooks import TradingMode
    from trading.runtime_control import RuntimeControl

    parent = Order.objects.create(
        account=paper, symbol=Symbol.objects.get(name="BTC-USD"), side="buy", type="market",
        quantity=Decimal("1"), status="pending", metadata={}, created_at=TS, updated_at=TS,
    )  # fmt: skip
    take_over(paper)
    control = RuntimeControl(paper.name)
    control.queue_risk([], [ModeChangeRequest("paper", TradingMode.HALTED, "x", "kill", TS)])
    state = TradingState.objects.get(account=paper).state
    events = RiskEvent.objects.count()
    with pytest.raises(OwnershipLost):
        control.flush_risk()
    assert TradingState.objects.get(account=paper).state == state
    assert RiskEvent.objects.count() == events and control._risk_outbox  # kept, not applied
    with pytest.raises(OwnershipLost):
        algo_parent_started(str(parent.client_order_id), TS, Decimal("100"))
    with pytest.raises(OwnershipLost):
        algo_parent_finished(str(parent.client_order_id), Decimal("1"), Decimal("100"), False)
    parent.refresh_from_db()
    assert parent.status == "pending" and parent.metadata == {}
