"""TradingView alert webhooks: hook secrets, alert validation, storage and delivery (writes/reads).

TradingView cannot send authentication headers, so each hook's URL carries its secret:
``/hooks/tradingview/<key>.<secret>``. The alert message is a JSON template using TradingView's
placeholders (documented in docs/architecture.md)::

    {"id": "{{strategy.order.id}}-{{time}}", "ticker": "{{ticker}}", "close": "{{close}}",
     "action": "{{strategy.order.action}}", "position_size": "{{strategy.position_size}}",
     "comment": "{{strategy.order.comment}}", "time": "{{time}}"}

``id`` makes a repeated delivery of the same alert harmless (one row per hook and id).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from marketdata.choices import SignalAction, SignalStatus
from marketdata.models import Symbol
from marketdata.models_sources import TradingViewHook, TradingViewSignal

MAX_BODY_BYTES = 4096
ALERT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
TICKER = re.compile(r"^[A-Za-z0-9_.:\-/!]{1,32}$")
FIELDS = {"id", "ticker", "exchange", "close", "action", "position_size", "comment", "time"}


class AlertInvalid(ValueError):
    """An alert body that cannot be accepted; ``errors`` maps field names to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class AlertFields:
    """A validated alert, ready to store."""

    alert_id: str
    ticker: str
    symbol: Symbol
    action: str
    close: Decimal
    position_size: Decimal | None
    comment: str
    alert_time: datetime | None


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def tradingview_hook_create(
    *, account, name: str, actor: Any = None
) -> tuple[TradingViewHook, str]:
    """Create a hook for ``account`` and return it with its token (shown only this once)."""
    from monitoring.services import audit_record, model_state

    secret = secrets.token_urlsafe(24)
    hook = TradingViewHook.objects.create(
        account=account, name=name, key=secrets.token_hex(8), secret_hash=_secret_hash(secret)
    )
    audit_record(
        actor=actor,
        action="tradingview_hook.create",
        obj=hook,
        before=None,
        after=model_state(hook, ["id", "name", "account_id", "key", "active"]),
    )
    return hook, f"{hook.key}.{secret}"


def tradingview_hook_for_token(token: str) -> TradingViewHook | None:
    """Return the active hook whose token this is (secret compared in constant time), or None."""
    key, _, secret = token.partition(".")
    if not key or not secret or len(token) > 128:
        return None
    hook = TradingViewHook.objects.filter(key=key, active=True).select_related("account").first()
    expected = hook.secret_hash if hook is not None else "0" * 64
    matches = hmac.compare_digest(expected, _secret_hash(secret))  # same work either way
    return hook if hook is not None and matches else None


def tradingview_rate_allow(hook: TradingViewHook, *, now: datetime) -> bool:
    """Count one alert against the hook's per-minute budget; False when it is spent."""
    key = f"tvhook:{hook.pk}:{int(now.timestamp()) // 60}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: this is the first of a new window
        cache.set(key, 1, timeout=120)
        count = 1
    return count <= hook.rate_per_minute


# TradingView's {{time}} is the bar's open: never ahead of the clock beyond this skew.
ALERT_TIME_SKEW = timedelta(minutes=5)


def alert_parse(body: Any, now: datetime | None = None) -> AlertFields:
    """Validate a decoded alert body; raise AlertInvalid with every field's error."""
    if not isinstance(body, dict):
        raise AlertInvalid({"body": ["expected a JSON object"]})
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        errors["body"] = [f"unknown field(s): {', '.join(unknown)}"]
    alert_id = _text(body, "id", errors, ALERT_ID, "1-64 letters, digits or _.:-")
    ticker = _text(body, "ticker", errors, TICKER, "a TradingView ticker such as BTCUSD")
    action = str(body.get("action", "")).strip().lower()
    if action not in SignalAction.values:
        errors["action"] = ["must be buy or sell ({{strategy.order.action}})"]
    close = _decimal(body, "close", errors, required=True)
    if close is not None and close <= 0:
        errors.setdefault("close", []).append("must be positive")
    position_size = _decimal(body, "position_size", errors, required=False)
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > 200:
        errors["comment"] = ["must be text of at most 200 characters"]
    alert_time = _time(body, errors)
    if alert_time is not None and alert_time > (now or timezone.now()) + ALERT_TIME_SKEW:
        errors["time"] = ["is in the future ({{time}} is the bar's open, already past)"]
    symbol = _symbol(ticker) if ticker else None
    if ticker and symbol is None:
        errors["ticker"] = [f"no active symbol matches {ticker!r}"]
    if errors:
        raise AlertInvalid(errors)
    return AlertFields(alert_id, ticker, symbol, action, close, position_size, comment, alert_time)


def _text(body: dict, name: str, errors: dict, pattern: re.Pattern, what: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        errors[name] = [f"required: {what}"]
        return ""
    return value


def _decimal(body: dict, name: str, errors: dict, *, required: bool) -> Decimal | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            errors[name] = ["required"]
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors[name] = ["must be a number"]
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        errors[name] = ["must be a number"]
        return None
    if not number.is_finite() or abs(number) >= Decimal("1e17"):
        errors[name] = ["must be a finite number below 1e17"]
        return None
    return number


def _time(body: dict, errors: dict) -> datetime | None:
    value = body.get("time")
    if value in (None, ""):
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or parsed.tzinfo is None:
        errors["time"] = ["must be an ISO 8601 time with a zone ({{time}})"]
        return None
    return parsed


def _symbol(ticker: str) -> Symbol | None:
    """Map a TradingView ticker (``BTCUSD``, ``COINBASE:BTCUSD``, ``BTC-USD``) to a Symbol."""
    bare = ticker.split(":")[-1].upper().replace("/", "").replace("-", "")
    for symbol in Symbol.objects.filter(active=True):
        names = {
            symbol.name.replace("-", "").upper(),
            str(symbol.venue_symbols.get("tradingview", "")).upper(),
        }
        if bare in names:
            return symbol
    return None


def tradingview_signal_store(
    *, hook: TradingViewHook, alert: AlertFields, payload: dict, now: datetime
) -> tuple[TradingViewSignal, bool]:
    """Store the alert once; return (signal, created). A repeated alert id returns the first."""
    try:
        with transaction.atomic():
            signal = TradingViewSignal.objects.create(
                hook=hook,
                account_id=hook.account_id,
                alert_id=alert.alert_id,
                symbol=alert.symbol,
                ticker=alert.ticker,
                action=alert.action,
                close=alert.close,
                position_size=alert.position_size,
                comment=alert.comment,
                alert_time=alert.alert_time,
                received_at=now,
                payload=payload,
            )
    except IntegrityError:
        existing = TradingViewSignal.objects.filter(hook=hook, alert_id=alert.alert_id).first()
        if existing is None:
            raise
        return existing, False
    TradingViewHook.objects.filter(pk=hook.pk).update(last_used_at=now)
    return signal, True


def tradingview_signals_pending(*, account: str, now: datetime) -> list[TradingViewSignal]:
    """Return the account's undelivered signals, oldest first; expire those too old to trade."""
    pending = list(
        TradingViewSignal.objects.filter(account__name=account, status=SignalStatus.PENDING)
        .select_related("symbol", "hook")
        .order_by("received_at", "pk")[:500]
    )
    fresh, stale = [], []
    for signal in pending:
        too_old = now - signal.received_at > timedelta(seconds=signal.hook.max_signal_age_seconds)
        (stale if too_old else fresh).append(signal)
    if stale:
        TradingViewSignal.objects.filter(
            pk__in=[s.pk for s in stale], status=SignalStatus.PENDING
        ).update(status=SignalStatus.EXPIRED, delivered_at=now)
    return fresh


def tradingview_signals_mark_delivered(*, ids: list[int], now: datetime) -> int:
    """Mark signals delivered to the engine (only those still pending); return how many."""
    return TradingViewSignal.objects.filter(pk__in=ids, status=SignalStatus.PENDING).update(
        status=SignalStatus.DELIVERED, delivered_at=now
    )


def clock() -> datetime:
    """Return the current time (one place to read it)."""
    return timezone.now()
