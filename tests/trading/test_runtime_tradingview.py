"""runtrader's engine trades TradingView alerts through risk, once, and expires stale ones."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from marketdata.models import TradingViewSignal
from marketdata.tradingview import tradingview_hook_create
from risk.models import RiskLimit
from tests.runtime_harness import db, running, until
from trading.models import Order, Position

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


def _alert(alert_id: str, action: str, position_size: str) -> dict:
    return {
        "id": alert_id,
        "ticker": "BTCUSD",
        "close": "50000",
        "action": action,
        "position_size": position_size,
        "comment": "test",
    }


def _post(token: str, alert: dict) -> int:
    response = Client().post(
        f"/hooks/tradingview/{token}", data=json.dumps(alert), content_type="application/json"
    )
    return response.status_code


def _status(alert_id: str) -> str:
    return TradingViewSignal.objects.get(alert_id=alert_id).status


async def status_is(alert_id: str, expected: str) -> bool:
    return await db(_status)(alert_id) == expected


async def position_is(predicate) -> bool:
    return predicate(await db(_position)())


def _position() -> float:
    row = Position.objects.filter(symbol__name="BTC-USD").first()
    return float(row.quantity) if row else 0.0


@pytest.fixture
def hook(paper):
    cache.clear()
    return tradingview_hook_create(account=paper, name="runtime")


async def test_alerts_open_and_close_a_position_once(paper, hook):
    _, token = hook
    # A stale alert (received long before the engine starts) must never trade.
    assert await db(_post)(token, _alert("old", "buy", "1")) == 201
    await db(
        lambda: TradingViewSignal.objects.filter(alert_id="old").update(
            received_at=timezone.now() - timedelta(hours=1)
        )
    )()
    async with running(paper, strategy="tradingview_signal", params={}) as runtime:
        await until(lambda: status_is("old", "expired"), "stale alert expired")
        assert await db(_post)(token, _alert("entry", "buy", "1")) == 201
        await until(lambda: position_is(lambda q: q > 0), "long position stored")
        # The same alert delivered again by TradingView is stored once and traded once.
        assert await db(_post)(token, _alert("entry", "buy", "1")) == 200
        assert await db(_post)(token, _alert("exit", "sell", "0")) == 201
        await until(lambda: position_is(lambda q: q == 0), "position closed")
        await until(lambda: status_is("exit", "delivered"), "signals marked delivered")
        assert await db(_status)("entry") == "delivered"
        assert runtime.summary.rejected == 0
    orders = await db(
        lambda: list(Order.objects.filter(strategy="tradingview_signal").order_by("pk"))
    )()
    assert [o.side for o in orders] == ["buy", "sell"]


async def test_alert_orders_go_through_risk(paper, hook):
    _, token = hook
    # An order-notional limit of $1: the strategy's entry must be refused by risk.
    await db(
        lambda: RiskLimit.objects.update_or_create(
            scope="account",
            account=paper,
            scope_value="",
            kind="max_order_notional",
            defaults={"value": 1, "action": "reject"},
        )
    )()
    async with running(paper, strategy="tradingview_signal", params={}):
        assert await db(_post)(token, _alert("entry", "buy", "1")) == 201
        await until(
            db(lambda: Order.objects.filter(status="rejected").exists()), "risk refused the entry"
        )
    assert await db(_position)() == 0
    assert await db(lambda: TradingViewSignal.objects.get().status)() == "delivered"


async def test_an_engine_whose_strategy_ignores_signals_leaves_them_pending(paper, hook):
    _, token = hook
    async with running(paper, strategy="sma_cross", params={}) as runtime:
        assert await db(_post)(token, _alert("entry", "buy", "1")) == 201
        # Ten 1 s bars at speed 10 span ten control polls (0.1 s apart) of this engine.
        bars = runtime.summary.bars
        await until(lambda: runtime.summary.bars >= bars + 10, "ten more bars")
        assert await db(_status)("entry") == "pending"
