"""Orders placed from outside the engine (the REST API): risk-checked now, idempotent on a key.

``order_place`` runs the risk engine's pre-trade check (``risk.engine.checks.RiskChecker``, the
checker ``runtrader`` attaches, with the account's enabled limits and lot sizes) on the
account's *stored* state, synchronously: a rejection is answered at once with the rule and the
reason and no order row is written; an approved (or reduced) order is recorded through
``trading.services.order_submit`` as ``pending`` and the account's running ``runtrader`` picks
it up and checks it again against its live state (and its buying power) before it reaches the
venue. An ``Idempotency-Key`` is stored per user (``OrderRequestKey``, unique): a retry with
the same key and body answers the first result, a reuse with another body is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from marketdata.models import Symbol
from marketdata.price_selectors import latest_price
from risk.engine.checks import RiskChecker
from risk.selectors import account_positions_view, lot_sizes, trading_state_of
from risk.services import limit_specs_load
from trading.choices import OPEN_ORDER_STATUSES
from trading.engine.errors import OrderRejected
from trading.engine.hooks import AccountView, Decision, OrderProposal, TradingMode
from trading.engine.orders import Order as EngineOrder
from trading.engine.orders import validate_order
from trading.engine.portfolio import Portfolio, PositionSnapshot
from trading.models import Account, Order, OrderRequestKey
from trading.services import order_submit


class IdempotencyKeyReused(ValueError):
    """The key was used before by the same user for a different request."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated order create: the engine's order fields plus an optional bracket."""

    symbol: str
    side: str
    quantity: Decimal
    type: str = "market"
    price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    time_in_force: str = "gtc"
    reduce_only: bool = False
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    # TWAP/VWAP: a parent the account's runtrader works in children over ``duration`` seconds.
    algo: str | None = None
    duration: float | None = None
    slices: int | None = None
    profile: tuple[Decimal, ...] | None = None
    max_participation: Decimal | None = None

    def algo_kwargs(self) -> dict[str, Any]:
        """Return ``order_submit``'s algo keywords (none for a plain order)."""
        if self.algo is None:
            return {}
        return {
            "algo": self.algo,
            "duration": self.duration,
            "slices": self.slices,
            "profile": list(self.profile) if self.profile is not None else None,
            "max_participation": self.max_participation,
        }

    def fingerprint(self, account: Account) -> str:
        """Return a SHA-256 of the request (exact decimals as strings) and its account."""
        body = {k: (str(v) if v is not None else None) for k, v in asdict(self).items()}
        body["account"] = account.pk
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """What the pre-trade check decided: approve, reduce (to ``quantity``) or reject."""

    decision: str
    rule: str
    reason: str
    quantity: Decimal
    requested_quantity: Decimal
    reference_price: Decimal | None

    def as_json(self) -> dict[str, Any]:
        """Return the verdict with exact decimals as strings."""
        return {
            "decision": self.decision,
            "rule": self.rule,
            "reason": self.reason,
            "quantity": str(self.quantity),
            "requested_quantity": str(self.requested_quantity),
            "reference_price": None if self.reference_price is None else str(self.reference_price),
        }


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """The outcome: the order (None when rejected), the verdict and whether it is a replay."""

    order: Order | None
    verdict: dict[str, Any]
    replayed: bool = False

    @property
    def accepted(self) -> bool:
        """Return True when an order was recorded."""
        return self.order is not None


def account_view(*, account: Account) -> AccountView:
    """Return the account as the risk checks see it: the engine's own view (``Portfolio.view``)
    of its stored cash and positions marked at the latest bars, its stored peak equity and the
    first equity stored today."""
    marked = account_positions_view(account=account)
    snapshots = account.snapshots.order_by("ts")
    peak = snapshots.order_by("-equity").values_list("equity", flat=True).first()
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    portfolio = Portfolio(account.name, account.cash, margin=None)
    portfolio.restore(
        cash=account.cash,
        positions=[
            PositionSnapshot(s, p.quantity, p.avg_price, p.mark_price) for s, p in marked.items()
        ],
        peak_equity=peak,
        day_start_equity=snapshots.filter(ts__gte=today).values_list("equity", flat=True).first(),
    )
    return portfolio.view(
        mode=TradingMode(trading_state_of(account=account)),
        open_orders=account.orders.filter(status__in=OPEN_ORDER_STATUSES).count(),
    )


def _validate(request: OrderRequest, account: Account) -> EngineOrder:
    """Apply the engine's order rules and the bracket's price order; raise ``OrderRejected``."""
    if not Symbol.objects.filter(name=request.symbol).exists():
        raise OrderRejected(f"unknown symbol {request.symbol!r}")
    candidate = EngineOrder(
        symbol=request.symbol,
        side=request.side,
        quantity=request.quantity,
        type=request.type,
        account=account.name,
        price=request.price,
        stop_price=request.stop_price,
        trail_amount=request.trail_amount,
        trail_percent=request.trail_percent,
        tif=request.time_in_force,
        reduce_only=request.reduce_only,
    )
    validate_order(candidate)
    if request.algo is not None:
        _check_algo(request)
    return candidate


def _check_algo(request: OrderRequest) -> None:
    """Refuse an algo request ``order_submit`` would refuse (before any row is written)."""
    from trading.engine.errors import AlgoConfigError
    from trading.services import _algo_spec

    if request.stop_loss is not None or request.take_profit is not None:
        raise OrderRejected("an algo parent takes no bracket (stop_loss/take_profit)")
    kwargs = request.algo_kwargs()
    try:
        _algo_spec(kwargs.pop("algo"), request.type, **kwargs)
    except AlgoConfigError as exc:
        raise OrderRejected(f"algo: {exc}") from None


def _check_bracket(request: OrderRequest, reference: Decimal | None) -> None:
    """Refuse a bracket whose prices are not ordered around the entry (as the OMS does)."""
    if request.stop_loss is None and request.take_profit is None:
        return
    if request.reduce_only:
        raise OrderRejected("a bracket entry cannot be reduce-only")
    entry = request.price or reference
    prices = [p for p in (request.stop_loss, entry, request.take_profit) if p is not None]
    if prices != sorted(prices, reverse=request.side == "sell") or len(set(prices)) != len(prices):
        raise OrderRejected(
            "bracket prices must be ordered: buy stop_loss < entry < take_profit, "
            "sell take_profit < entry < stop_loss"
        )


def order_risk_check(
    *, account: Account, request: OrderRequest, now: datetime | None = None
) -> RiskVerdict:
    """Run the pre-trade risk check on ``account``'s stored state; raise ``OrderRejected``."""
    _validate(request, account)
    reference = latest_price(symbol=request.symbol) or request.price or request.stop_price
    _check_bracket(request, reference)
    if reference is None:
        return RiskVerdict(
            "reject", "reference_price", f"no reference price for {request.symbol}",
            Decimal(0), request.quantity, None,
        )  # fmt: skip
    checker = RiskChecker(limit_specs_load(account=account), lot_sizes=lot_sizes())
    result = checker.check(
        OrderProposal(
            account=account.name,
            symbol=request.symbol,
            side=request.side,
            quantity=request.quantity,
            order_type=request.type,
            reference_price=reference,
            limit_price=request.price,
            strategy="api",
            reduce_only=request.reduce_only,
            ts=now or timezone.now(),
        ),
        account_view(account=account),
    )
    quantity = request.quantity if result.decision is Decision.APPROVE else result.quantity
    return RiskVerdict(
        result.decision.value, result.limit, result.reason, quantity, request.quantity, reference
    )


def _claim_key(
    *, user: Any, key: str, fingerprint: str, account: Account
) -> tuple[OrderRequestKey, bool]:
    """Insert the key row (True) or return the stored one of an earlier request (False)."""
    try:
        with transaction.atomic():
            row = OrderRequestKey.objects.create(
                user=user, key=key, request_hash=fingerprint, account=account
            )
        return row, True
    except IntegrityError:
        row = OrderRequestKey.objects.select_related("order").get(user=user, key=key)
    if row.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was already used for a different request"
        )
    return row, False


@transaction.atomic
def order_place(
    *,
    account: Account,
    request: OrderRequest,
    actor: Any,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> PlacedOrder:
    """Risk-check and record an order; a retried ``idempotency_key`` answers the first result.

    Raises ``OrderRejected`` for an order the engine's rules refuse (nothing is stored) and
    ``IdempotencyKeyReused`` when the key names another request.
    """
    row = None
    if idempotency_key:
        row, fresh = _claim_key(
            user=actor, key=idempotency_key, fingerprint=request.fingerprint(account),
            account=account,
        )  # fmt: skip
        if not fresh:
            return PlacedOrder(row.order, row.response, replayed=True)
    verdict = order_risk_check(account=account, request=request, now=now)
    order = None
    if verdict.decision != "reject":
        order = _record(account=account, request=request, verdict=verdict, actor=actor)
    if row is not None:
        row.order = order
        row.status_code = 201 if order is not None else 422
        row.response = verdict.as_json()
        row.save(update_fields=["order", "status_code", "response"])
    return PlacedOrder(order, verdict.as_json())


def _record(*, account: Account, request: OrderRequest, verdict: RiskVerdict, actor: Any) -> Order:
    """Store the (maybe reduced) order as pending, with its bracket and the verdict."""
    order = order_submit(
        account=account,
        symbol=request.symbol,
        side=request.side,
        quantity=verdict.quantity,
        type=request.type,
        price=request.price,
        stop_price=request.stop_price,
        trail_amount=request.trail_amount,
        trail_percent=request.trail_percent,
        time_in_force=request.time_in_force,
        reduce_only=request.reduce_only,
        strategy="api",
        actor=actor,
        **request.algo_kwargs(),
    )
    metadata = dict(order.metadata)
    if request.stop_loss is not None:
        metadata["stop_loss"] = str(request.stop_loss)
    if request.take_profit is not None:
        metadata["take_profit"] = str(request.take_profit)
    if verdict.decision == "reduce":
        metadata["requested_quantity"] = str(request.quantity)
        metadata["reduced_by"] = verdict.rule
    if metadata != order.metadata:
        order.metadata = metadata
        order.save(update_fields=["metadata"])
    return order
