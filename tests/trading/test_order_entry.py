"""Orders placed through the API's service: pre-trade risk check on stored state, idempotency."""

from __future__ import annotations

import datetime as dt
import io
import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from marketdata.models import Bar, Symbol
from monitoring.models import AuditLog
from risk.services import trading_state_set
from tests.factories import UserFactory
from trading.engine.errors import OrderRejected
from trading.models import Account, Order, OrderRequestKey
from trading.order_entry import IdempotencyKeyReused, OrderRequest, order_place
from trading.persistence import engine_order
from trading.runtime import _intent_from

PRICE = 50_000.0


@pytest.fixture
def market(db):
    """The paper account (100,000 cash, default limits) with a BTC-USD 1m close of 50,000."""
    call_command("bootstrap", "--no-admin", stdout=io.StringIO())
    paper = Account.objects.get(name="paper")
    btc = Symbol.objects.get(name="BTC-USD")
    Bar.objects.create(
        symbol=btc, timeframe="1m", ts=timezone.now() - dt.timedelta(minutes=2),
        open=PRICE, high=PRICE, low=PRICE, close=PRICE, volume=1.0,
    )  # fmt: skip
    return paper


@pytest.fixture
def trader(db):
    return UserFactory(username="trader-1")


def _buy(quantity: str, **extra) -> OrderRequest:
    return OrderRequest(symbol="BTC-USD", side="buy", quantity=Decimal(quantity), **extra)


def test_approved_order_is_recorded_pending_and_audited(market, trader):
    placed = order_place(account=market, request=_buy("0.1"), actor=trader)
    assert placed.accepted and placed.verdict["decision"] == "approve"
    order = Order.objects.get()
    assert (order.status, order.quantity, order.strategy) == ("pending", Decimal("0.1"), "api")
    assert placed.verdict["reference_price"] == "50000.0"
    audit = AuditLog.objects.get(action="order.submit")
    assert (audit.actor, audit.object_id) == (trader, str(order.pk))


def test_oversized_order_is_reduced_by_the_position_limit(market, trader):
    # 1 BTC = 50 % of equity; the default position limit (20 %, action reduce) cuts it to 0.4.
    placed = order_place(account=market, request=_buy("1"), actor=trader)
    assert placed.verdict["decision"] == "reduce"
    assert placed.verdict["rule"] == "max_position_pct"
    assert placed.order.quantity == Decimal("0.4")
    assert placed.order.metadata["requested_quantity"] == "1"


def test_the_verdict_prices_a_quote_mid_in_its_decimal_digits(market, trader):
    """Floats 50120.97 and 50120.99 average to 50120.979999999996: the verdict says 50120.98."""
    from marketdata.models import Quote

    Quote.objects.create(
        symbol=Symbol.objects.get(name="BTC-USD"), venue="sim", ts=timezone.now(),
        bid=50120.97, bid_size=1, ask=50120.99, ask_size=1,
    )  # fmt: skip
    placed = order_place(account=market, request=_buy("1"), actor=trader)
    assert placed.verdict["decision"] == "reduce"
    assert placed.verdict["reference_price"] == "50120.98"


def test_halted_account_gets_the_verdict_and_no_order(market, trader):
    trading_state_set(account=market, state="halted", reason="test", actor=trader)
    placed = order_place(account=market, request=_buy("0.1"), actor=trader)
    assert not placed.accepted
    assert placed.verdict["decision"] == "reject"
    assert placed.verdict["rule"] == "trading_state"
    assert "halted" in placed.verdict["reason"]
    assert not Order.objects.exists()


def test_limit_price_far_from_the_market_is_rejected_by_the_price_band(market, trader):
    request = _buy("0.1", type="limit", price=Decimal("60000"))
    placed = order_place(account=market, request=request, actor=trader)
    assert (placed.verdict["decision"], placed.verdict["rule"]) == ("reject", "price_band_bps")
    assert not Order.objects.exists()


def test_invalid_order_raises_and_stores_nothing(market, trader):
    with pytest.raises(OrderRejected):
        order_place(account=market, request=_buy("0.1", type="limit"), actor=trader)
    with pytest.raises(OrderRejected, match="unknown symbol"):
        order_place(
            account=market,
            request=OrderRequest(symbol="NOPE-USD", side="buy", quantity=Decimal(1)),
            actor=trader,
            idempotency_key="k",
        )
    assert not Order.objects.exists() and not OrderRequestKey.objects.exists()


def test_bracket_prices_must_surround_the_entry(market, trader):
    with pytest.raises(OrderRejected, match="bracket"):
        order_place(
            account=market,
            request=_buy("0.1", stop_loss=Decimal("51000"), take_profit=Decimal("55000")),
            actor=trader,
        )
    placed = order_place(
        account=market,
        request=_buy("0.1", stop_loss=Decimal("48000"), take_profit=Decimal("52000")),
        actor=trader,
    )
    intent = _intent_from(engine_order(placed.order))
    assert (intent.stop_loss, intent.take_profit) == (Decimal("48000"), Decimal("52000"))
    assert "stop_loss" not in (intent.metadata or {})


def test_retried_key_returns_the_first_result(market, trader):
    first = order_place(account=market, request=_buy("0.1"), actor=trader, idempotency_key="a1")
    again = order_place(account=market, request=_buy("0.1"), actor=trader, idempotency_key="a1")
    assert again.replayed and again.order.pk == first.order.pk
    assert Order.objects.count() == 1
    with pytest.raises(IdempotencyKeyReused):
        order_place(account=market, request=_buy("0.2"), actor=trader, idempotency_key="a1")
    other = UserFactory(username="trader-2")  # keys are per user
    order_place(account=market, request=_buy("0.1"), actor=other, idempotency_key="a1")
    assert Order.objects.count() == 2


def test_retried_rejection_replays_the_verdict(market, trader):
    trading_state_set(account=market, state="halted", reason="test", actor=trader)
    first = order_place(account=market, request=_buy("0.1"), actor=trader, idempotency_key="r")
    trading_state_set(account=market, state="active", reason="test", actor=trader)
    again = order_place(account=market, request=_buy("0.1"), actor=trader, idempotency_key="r")
    assert again.replayed and not again.accepted and again.verdict == first.verdict
    assert not Order.objects.exists()


def test_two_concurrent_requests_with_one_key_make_one_order(transactional_db, market, trader):
    barrier = threading.Barrier(2)
    results, errors = [], []

    def place() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(
                order_place(account=market, request=_buy("0.1"), actor=trader, idempotency_key="c")
            )
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=place) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert Order.objects.count() == 1
    assert sorted(r.replayed for r in results) == [False, True]
    assert {r.order.pk for r in results} == {Order.objects.get().pk}


def test_the_live_bridge_marks_a_quote_mid_in_its_decimal_digits():
    """The reference price the live engine's risk checks and verdicts carry (no float noise)."""
    from marketdata.engine.events import BookSnapshot, Quote, decimal_mid
    from trading.live_bridge import LiveVenueBridge

    assert decimal_mid(50120.97, 50120.99) == Decimal("50120.98")
    assert str(decimal_mid(45101.38, 45101.42)) == "45101.40"

    async def persist(order) -> None:  # never called: no order is sent here
        raise AssertionError(order)

    bridge = LiveVenueBridge(None, persist=persist)  # no venue: only the price table is read
    now = timezone.now()
    bridge.on_quote(Quote("BTC-USD", now, 50120.97, 1.0, 50120.99, 1.0))
    assert str(bridge.reference_price("BTC-USD")) == "50120.98"
    bridge.on_book(BookSnapshot("ETH-USD", now, ((45101.38, 1.0),), ((45101.42, 1.0),)))
    assert str(bridge.reference_price("ETH-USD")) == "45101.40"
