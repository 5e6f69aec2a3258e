"""``POST /hooks/tradingview/<token>``: authentication, validation, idempotency, limits."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.cache import cache

from marketdata.models import TradingViewHook, TradingViewSignal
from marketdata.tradingview import tradingview_hook_create
from monitoring.models import AuditLog
from tests.factories import AccountFactory, SymbolFactory

pytestmark = pytest.mark.django_db

# What TradingView sends for the documented template once its placeholders are filled in.
ALERT = {
    "id": "long-entry-2024-03-01T12:00:00Z",
    "ticker": "BTCUSD",
    "close": "61234.5",
    "action": "buy",
    "position_size": "0.5",
    "comment": "Long entry",
    "time": "2024-03-01T12:00:00Z",
}


@pytest.fixture
def hook_token():
    cache.clear()
    SymbolFactory(name="BTC-USD")
    SymbolFactory(name="ETH-USD")
    account = AccountFactory(name="tv-paper")
    hook, token = tradingview_hook_create(account=account, name="main")
    return hook, token


def post(client, token: str, body, **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        f"/hooks/tradingview/{token}", data=data, content_type="application/json", **extra
    )


def test_alert_is_stored_once_per_alert_id(client, hook_token):
    hook, token = hook_token
    first = post(client, token, ALERT)
    again = post(client, token, ALERT)
    assert first.status_code == 201, first.json()
    assert again.status_code == 200 and again.json()["duplicate"] is True
    signal = TradingViewSignal.objects.get()
    assert (signal.symbol.name, signal.action, signal.status) == ("BTC-USD", "buy", "pending")
    assert signal.close == Decimal("61234.5") and signal.position_size == Decimal("0.5")
    assert signal.account_id == hook.account_id
    # A plain-text alert (TradingView's content type for messages it does not see as JSON)
    # and an exchange-prefixed ticker are accepted too.
    other = {**ALERT, "id": "exit-1", "action": "sell", "ticker": "COINBASE:ETHUSD"}
    response = client.post(
        f"/hooks/tradingview/{token}", data=json.dumps(other), content_type="text/plain"
    )
    assert response.status_code == 201
    assert TradingViewSignal.objects.get(alert_id="exit-1").symbol.name == "ETH-USD"


def test_hook_creation_is_audited_and_only_the_hash_is_stored(hook_token):
    hook, token = hook_token
    key, secret = token.split(".")
    assert hook.key == key and secret not in hook.secret_hash
    assert AuditLog.objects.filter(action="tradingview_hook.create", object_id=str(hook.pk))


@pytest.mark.parametrize(
    "token",
    ["nope", "deadbeefdeadbeef.wrong-secret", ".", "x" * 200],
)
def test_wrong_token_is_not_found_and_stores_nothing(client, hook_token, token):
    assert post(client, token, ALERT).status_code == 404
    assert not TradingViewSignal.objects.exists()


def test_right_key_wrong_secret_and_inactive_hook_are_refused(client, hook_token):
    hook, token = hook_token
    key = token.split(".")[0]
    assert post(client, f"{key}.not-the-secret", ALERT).status_code == 404
    TradingViewHook.objects.filter(pk=hook.pk).update(active=False)
    assert post(client, token, ALERT).status_code == 404
    assert not TradingViewSignal.objects.exists()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({**ALERT, "action": "hold"}, {"action"}),
        ({**ALERT, "close": "-1"}, {"close"}),
        ({**ALERT, "close": "NaN"}, {"close"}),
        ({**ALERT, "close": True}, {"close"}),
        ({**ALERT, "position_size": "1e400"}, {"position_size"}),
        ({**ALERT, "ticker": "DOGEUSD"}, {"ticker"}),
        ({**ALERT, "id": "has spaces"}, {"id"}),
        ({**ALERT, "time": "yesterday"}, {"time"}),
        ({**ALERT, "comment": "x" * 201}, {"comment"}),
        ({**ALERT, "extra": 1}, {"body"}),
        ({k: v for k, v in ALERT.items() if k != "close"}, {"close"}),
        ([ALERT], {"body"}),
        ("{not json", {"body"}),
        (b"\xff\xfe", {"body"}),
        ({}, {"id", "ticker", "action", "close"}),
    ],
)
def test_hostile_input_gets_400_with_field_errors(client, hook_token, body, fields):
    _, token = hook_token
    response = post(client, token, body)
    assert response.status_code == 400
    assert set(response.json()["errors"]) == fields
    assert not TradingViewSignal.objects.exists()


def test_oversized_body_is_refused_before_parsing(client, hook_token):
    _, token = hook_token
    response = post(client, token, {**ALERT, "comment": "x" * 5000})
    assert response.status_code == 413
    assert client.get(f"/hooks/tradingview/{token}").status_code == 405
    assert not TradingViewSignal.objects.exists()


def test_rate_limit_per_hook(client, hook_token):
    hook, token = hook_token
    TradingViewHook.objects.filter(pk=hook.pk).update(rate_per_minute=3)
    codes = [post(client, token, {**ALERT, "id": f"a{i}"}).status_code for i in range(5)]
    assert codes[:3] == [201, 201, 201]
    assert codes[3:] == [429, 429]
    assert TradingViewSignal.objects.count() == 3


def test_admin_creates_a_hook_and_shows_its_url_once(admin_client):
    cache.clear()
    SymbolFactory(name="BTC-USD")
    account = AccountFactory(name="tv-admin")
    response = admin_client.post(
        "/admin/marketdata/tradingviewhook/add/",
        {
            "name": "desk",
            "account": account.pk,
            "active": "on",
            "rate_per_minute": 5,
            "max_signal_age_seconds": 60,
        },
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    url = next(m.split(": ", 1)[1] for m in shown if "/hooks/tradingview/" in m)
    hook = TradingViewHook.objects.get(name="desk")
    assert hook.rate_per_minute == 5
    token = url.rsplit("/", 1)[1]
    assert post(admin_client, token, ALERT).status_code == 201
    page = admin_client.get(f"/admin/marketdata/tradingviewhook/{hook.pk}/change/")
    assert token.split(".")[1] not in page.content.decode()


def test_outcomes_are_counted_for_prometheus(client, hook_token):
    from monitoring.metrics import ALT_DATA_EVENTS

    def count(outcome: str) -> float:
        return ALT_DATA_EVENTS.labels("tradingview", outcome)._value.get()

    before = {o: count(o) for o in ("stored", "duplicate", "refused", "not_found")}
    _, token = hook_token
    post(client, token, ALERT)
    post(client, token, ALERT)
    post(client, token, {**ALERT, "action": "hold"})
    post(client, "nope", ALERT)
    assert {o: count(o) - before[o] for o in before} == {
        "stored": 1,
        "duplicate": 1,
        "refused": 1,
        "not_found": 1,
    }
