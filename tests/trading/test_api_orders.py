"""Order endpoints: create through the risk check (201/422/400), idempotency, cancel, close."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from marketdata.models import Bar, Symbol
from monitoring.models import AuditLog, SystemEvent
from risk.models import TradingState
from tests.factories import UserFactory
from trading.models import Account, Order, Position


def _user(name: str, role: str | None, *accounts: Account):
    user = UserFactory(username=name)
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    for account in accounts:
        account.members.add(user)
    return user


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def paper(db):
    call_command("bootstrap", "--no-admin", stdout=io.StringIO())
    account = Account.objects.get(name="paper")
    Bar.objects.create(
        symbol=Symbol.objects.get(name="BTC-USD"), timeframe="1m",
        ts=timezone.now() - dt.timedelta(minutes=2),
        open=50_000, high=50_000, low=50_000, close=50_000, volume=1,
    )  # fmt: skip
    return account


@pytest.fixture
def trader(paper):
    return _client(_user("trader", "trader", paper))


ORDER = {"symbol": "BTC-USD", "side": "buy", "quantity": "0.1"}


def test_create_answers_201_with_the_order_and_the_verdict(paper, trader):
    body = {**ORDER, "account": paper.pk, "type": "limit", "price": "49900",
            "stop_loss": "48000", "take_profit": "52000"}  # fmt: skip
    response = trader.post("/api/v1/orders", body, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["order"]["quantity"] == "0.1000000000"
    assert data["order"]["status"] == "pending"
    assert (data["order"]["stop_loss"], data["order"]["take_profit"]) == (
        "48000.0000000000",
        "52000.0000000000",
    )
    assert data["risk"]["decision"] == "approve"
    listed = trader.get(f"/api/orders?account={paper.pk}&open=true").json()
    assert [o["id"] for o in listed["results"]] == [data["order"]["id"]]


def test_create_refused_by_risk_is_422_with_rule_and_reason(paper, trader):
    trader.post(f"/api/v1/accounts/{paper.pk}/halt", {"reason": "test"}, format="json")
    response = trader.post("/api/v1/orders", {**ORDER, "account": paper.pk}, format="json")
    assert response.status_code == 422
    assert response.json()["risk"]["rule"] == "trading_state"
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": "NaN"}, "quantity"),
        ({"side": "long"}, "side"),
        ({"type": "limit"}, "non_field_errors"),
        ({"symbol": "NOPE-USD"}, "symbol"),
        ({"stop_loss": "60000"}, "stop_loss"),
        ({"account": "x"}, "account"),
    ],
)
def test_bad_input_is_400_with_field_errors(paper, trader, change, field):
    response = trader.post("/api/v1/orders", {**ORDER, "account": paper.pk, **change},
                           format="json")  # fmt: skip
    assert response.status_code == 400
    assert field in response.json()
    assert not Order.objects.exists()


def test_another_accounts_id_is_404(paper, trader):
    other = Account.objects.create(name="other", initial_capital=1000, cash=1000)
    response = trader.post("/api/v1/orders", {**ORDER, "account": other.pk}, format="json")
    assert response.status_code == 404
    foreign = Order.objects.create(
        account=other, symbol=Symbol.objects.get(name="BTC-USD"), side="buy", quantity=1,
        created_at=timezone.now(), updated_at=timezone.now(),
    )  # fmt: skip
    assert trader.get(f"/api/v1/orders/{foreign.pk}").status_code == 404
    assert trader.post(f"/api/v1/orders/{foreign.pk}/cancel").status_code == 404
    assert trader.post(f"/api/v1/accounts/{other.pk}/flatten").status_code == 404


def test_idempotency_key_returns_the_first_order(paper, trader):
    body = {**ORDER, "account": paper.pk}
    first = trader.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = trader.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["order"]["id"] == first.json()["order"]["id"]
    assert again["Idempotent-Replayed"] == "true"
    other_body = {**body, "quantity": "0.2"}
    reused = trader.post("/api/v1/orders", other_body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert reused.status_code == 422
    assert Order.objects.count() == 1


def test_viewer_reads_but_cannot_place(paper):
    viewer = _client(_user("viewer", "viewer", paper))
    assert viewer.get("/api/v1/orders").status_code == 200
    assert viewer.post("/api/v1/orders", {**ORDER, "account": paper.pk},
                       format="json").status_code == 403  # fmt: skip
    assert APIClient().get("/api/v1/orders").status_code == 401


def test_cancel_close_and_flatten_are_audited(paper, trader):
    placed = trader.post("/api/v1/orders", {**ORDER, "account": paper.pk}, format="json").json()
    cancel = trader.post(f"/api/v1/orders/{placed['order']['id']}/cancel", {"reason": "test"},
                         format="json")  # fmt: skip
    assert cancel.status_code == 202 and cancel.json()["status"] == "cancelled"
    assert trader.delete(f"/api/v1/orders/{placed['order']['id']}").status_code == 409
    btc = Symbol.objects.get(name="BTC-USD")
    Position.objects.create(account=paper, symbol=btc, quantity=Decimal("0.5"),
                            average_price=50_000, updated_at=timezone.now())  # fmt: skip
    close = trader.post(f"/api/v1/accounts/{paper.pk}/positions/BTC-USD/close")
    assert close.status_code == 201
    assert (close.json()["side"], close.json()["quantity"], close.json()["reduce_only"]) == (
        "sell", "0.5000000000", True,
    )  # fmt: skip
    assert trader.post(f"/api/v1/accounts/{paper.pk}/positions/ETH-USD/close").status_code == 409
    flat = trader.post(f"/api/v1/accounts/{paper.pk}/flatten")
    assert flat.status_code == 202 and flat.json()["cancelled"] == 1  # the close order
    actions = set(AuditLog.objects.values_list("action", flat=True))
    assert {"order.submit", "order.cancel"} <= actions


def test_engine_status_and_pause_resume(paper, trader):
    now = timezone.now()
    SystemEvent.objects.create(ts=now, component="runtrader", kind="session_start",
                               context={"account": "paper", "strategy": "sma_cross",
                                        "symbols": ["BTC-USD"], "feed": "sim",
                                        "timeframe": "1m"})  # fmt: skip
    SystemEvent.objects.create(ts=now, component="runtrader", kind="heartbeat",
                               context={"account": "paper", "status": "running"})  # fmt: skip
    engines = trader.get("/api/v1/control/engines").json()
    assert engines[0]["running"] and engines[0]["strategy"] == "sma_cross"
    assert engines[0]["symbols"] == ["BTC-USD"]
    paused = trader.post(f"/api/v1/accounts/{paper.pk}/pause", {}, format="json")
    assert paused.status_code == 200 and paused.json()["state"] == "reducing"
    assert TradingState.objects.get(account=paper).state == "reducing"
    trader.post(f"/api/v1/accounts/{paper.pk}/resume", {}, format="json")
    assert TradingState.objects.get(account=paper).state == "active"
    assert AuditLog.objects.filter(action="trading_state.set").count() == 2
