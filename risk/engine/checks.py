"""Pre-trade risk checks and ``RiskChecker``, the ``PreTradeHook`` the trading engine calls.

Each ``check_*`` function decides one limit for one order and returns a ``PreTradeResult``:
approve (unchanged quantity), reduce (to the largest lot-rounded quantity that fits) or reject
(with a reason that starts with the limit's label). ``RiskChecker`` runs them in a fixed order:

1. order validation, then the account's trading mode (ACTIVE / REDUCING / HALTED);
2. loss gates (daily loss, drawdown): a breach asks for REDUCING or HALTED and lets only the
   orders that mode allows through;
3. reductions: limits with action ``reduce``; the smallest reduced quantity wins;
4. hard rejects: open orders, order rate, price band, and every limit whose action is not
   ``reduce``, judged on the order as reduced: a position limit that shrinks an all-in order
   keeps a gross-exposure limit from refusing what would fit once shrunk.

Orders that only shrink a position (``hooks.is_risk_reducing``) always pass the position,
exposure, correlation and loss checks; they still face notional, rate, open-order and price-band
limits, since a fat-fingered close is still fat-fingered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from risk.engine.constants import BPS, DEFAULT_LOT_SIZE
from risk.engine.correlation import CorrelationTracker
from risk.engine.errors import InvalidLimitError, RiskClockError
from risk.engine.events import MODE_RANK, ModeChangeRequest, RiskEventRecord, Severity
from risk.engine.limits import LOSS_KINDS, LimitAction, LimitKind, LimitScope, LimitSpec
from risk.engine.sizing import round_down_to_lot
from trading.engine.hooks import (
    AccountView,
    Decision,
    OrderProposal,
    PreTradeResult,
    TradingMode,
    is_risk_reducing,
)

TRADING_STATE = "trading_state"
ORDER_VALIDATION = "order_validation"
_ZERO = Decimal(0)
_HARD_KINDS = frozenset(
    {LimitKind.MAX_OPEN_ORDERS, LimitKind.MAX_ORDER_RATE, LimitKind.PRICE_BAND_BPS}
)


@dataclass(slots=True)
class OrderContext:
    """Everything the checks need about one order, computed once per ``check`` call."""

    order: OrderProposal
    account: AccountView
    price: Decimal  # the order's reference price; the symbol's position is valued at it
    held: Decimal  # signed position in the order's symbol
    gross_other: Decimal  # Σ|value| of positions in other symbols, at their marks
    net_other: Decimal  # Σ value of positions in other symbols, at their marks
    reducing: bool
    lot: Decimal
    now: datetime | None = None
    approved: PreTradeResult = field(init=False)
    correlated: list[tuple[float, str, Decimal]] | None = None  # filled on first use

    def __post_init__(self) -> None:
        """Build the shared approval once; every passing check returns it."""
        self.approved = PreTradeResult(Decision.APPROVE, self.order.quantity)

    @classmethod
    def build(
        cls,
        order: OrderProposal,
        account: AccountView,
        lot: Decimal = DEFAULT_LOT_SIZE,
        now: datetime | None = None,
    ) -> OrderContext:
        """Compute exposures in one pass over the account's positions."""
        gross = net = _ZERO
        held = _ZERO
        for symbol, pos in account.positions.items():
            if symbol == order.symbol:
                held = pos.quantity
                continue
            value = pos.quantity * pos.mark_price
            net += value
            gross += abs(value)
        return cls(
            order=order,
            account=account,
            price=order.reference_price,
            held=held,
            gross_other=gross,
            net_other=net,
            reducing=is_risk_reducing(order, account),
            lot=lot,
            now=now,
        )

    @property
    def buy(self) -> bool:
        """Return True for a buy order."""
        return self.order.side == "buy"

    @property
    def after(self) -> Decimal:
        """Return the signed position in the order's symbol if the order fills fully."""
        return self.held + self.order.signed_quantity


# --- helpers ---------------------------------------------------------------------------------


def _reject(spec_label: str, kind: str, detail: str) -> PreTradeResult:
    """Return a rejection whose reason names the limit."""
    return PreTradeResult(Decision.REJECT, _ZERO, f"{spec_label}: {detail}", kind)


def _side_bound(held: Decimal, cap_qty: Decimal, buy: bool) -> Decimal:
    """Return the largest quantity keeping |held ± q| within ``cap_qty`` (or shrinking it).

    Trading against ``held`` may close it (always allowed) and then open up to ``cap_qty`` on the
    other side; trading with it may only add up to the room left under the cap.
    """
    against = (held > 0 and not buy) or (held < 0 and buy)
    if against:
        return abs(held) + max(cap_qty, _ZERO)
    return cap_qty - abs(held)


def _bounded(
    spec: LimitSpec, ctx: OrderContext, max_qty: Decimal, detail: Callable[[], str]
) -> PreTradeResult:
    """Approve within ``max_qty``; else reduce (action reduce, room left) or reject."""
    if ctx.order.quantity <= max_qty:
        return ctx.approved
    if spec.action is LimitAction.REDUCE:
        qty = round_down_to_lot(max_qty, ctx.lot)
        if qty > 0:
            reason = f"{spec.label}: {detail()}; reduced {ctx.order.quantity} to {qty}"
            return PreTradeResult(Decision.REDUCE, qty, reason, spec.kind.value)
    return _reject(spec.label, spec.kind.value, detail())


def _fraction(numerator: Decimal, equity: Decimal) -> str:
    """Format ``numerator / equity`` as a percentage, or say equity is not positive."""
    if equity <= 0:
        return f"{numerator} with non-positive equity {equity}"
    return f"{numerator / equity:.2%} of equity"


# --- exposure checks (reducible) ---------------------------------------------------------------


def check_order_notional(spec: LimitSpec, ctx: OrderContext) -> PreTradeResult:
    """Bound quantity × reference price by ``spec.value``."""
    return _bounded(
        spec,
        ctx,
        spec.value / ctx.price,
        lambda: f"notional {ctx.order.notional} exceeds {spec.value}",
    )


def check_position_pct(spec: LimitSpec, ctx: OrderContext) -> PreTradeResult:
    """Bound the symbol's post-trade |position value| by ``spec.value`` × equity."""
    if ctx.reducing:
        return ctx.approved
    cap_qty = spec.value * ctx.account.equity / ctx.price
    return _bounded(
        spec,
        ctx,
        _side_bound(ctx.held, cap_qty, ctx.buy),
        lambda: (
            f"position {abs(ctx.after) * ctx.price} would be "
            f"{_fraction(abs(ctx.after) * ctx.price, ctx.account.equity)}, limit {spec.value:.2%}"
        ),
    )


def check_gross_exposure(spec: LimitSpec, ctx: OrderContext) -> PreTradeResult:
    """Bound post-trade gross exposure by ``spec.value`` × equity."""
    if ctx.reducing:
        return ctx.approved
    room = spec.value * ctx.account.equity - ctx.gross_other
    gross_after = ctx.gross_other + abs(ctx.after) * ctx.price
    return _bounded(
        spec,
        ctx,
        _side_bound(ctx.held, room / ctx.price, ctx.buy),
        lambda: (
            f"gross exposure {gross_after} would be "
            f"{_fraction(gross_after, ctx.account.equity)}, limit {spec.value:.2%}"
        ),
    )


def check_net_exposure(spec: LimitSpec, ctx: OrderContext) -> PreTradeResult:
    """Bound post-trade |net exposure| by ``spec.value`` × equity (orders shrinking it pass)."""
    if ctx.reducing:
        return ctx.approved
    net_before = ctx.net_other + ctx.held * ctx.price
    net_after = ctx.net_other + ctx.after * ctx.price
    cap_qty = spec.value * ctx.account.equity / ctx.price
    return _bounded(
        spec,
        ctx,
        _side_bound(net_before / ctx.price, cap_qty, ctx.buy),
        lambda: (
            f"net exposure {net_after} would be "
            f"{_fraction(abs(net_after), ctx.account.equity)}, limit {spec.value:.2%}"
        ),
    )


def directional_correlations(
    ctx: OrderContext, tracker: CorrelationTracker
) -> list[tuple[float, str, Decimal]]:
    """Return (correlation × both directions, symbol, |value|) for every other held position.

    Computed once per order and shared by every correlation limit: positive means the new
    exposure and the held position would gain and lose together.
    """
    cached = ctx.correlated
    if cached is not None:
        return cached
    row = tracker.row(ctx.order.symbol)
    out: list[tuple[float, str, Decimal]] = []
    if row:
        direction = 1.0 if ctx.buy else -1.0
        for symbol, pos in ctx.account.positions.items():
            corr = row.get(symbol)
            qty = pos.quantity
            if corr is None or not qty or symbol == ctx.order.symbol:
                continue
            signed = corr * direction if qty > 0 else -corr * direction
            out.append((signed, symbol, abs(qty * pos.mark_price)))
    ctx.correlated = out
    return out


def check_correlation(
    spec: LimitSpec, ctx: OrderContext, tracker: CorrelationTracker
) -> PreTradeResult:
    """Bound the combined exposure of the symbol and the positions it moves with.

    A held symbol joins the group when its return correlation, signed by the direction of both
    positions, exceeds ``spec.value``: long BTC + long ETH at ρ 0.9 is one bet, short BTC + long
    ETH is a hedge. Without a correlated position the limit does not bind.
    """
    if ctx.reducing:
        return ctx.approved
    threshold = float(spec.value)
    members = [(s, v) for c, s, v in directional_correlations(ctx, tracker) if c > threshold]
    if not members:
        return ctx.approved
    group = sum((v for _, v in members), _ZERO)
    room = spec.max_combined_pct * ctx.account.equity - group
    combined = group + abs(ctx.after) * ctx.price
    names = ",".join(s for s, _ in members)
    return _bounded(
        spec,
        ctx,
        _side_bound(ctx.held, room / ctx.price, ctx.buy),
        lambda: (
            f"exposure {combined} correlated above {spec.value} with {names} "
            f"would be {_fraction(combined, ctx.account.equity)}, limit {spec.max_combined_pct:.2%}"
        ),
    )


# --- hard checks -----------------------------------------------------------------------------


def check_open_orders(spec: LimitSpec, ctx: OrderContext) -> PreTradeResult:
    """Reject when the account already has ``spec.value`` open orders (account-wide count)."""
    if ctx.account.open_orders + 1 <= spec.value:
        return ctx.approved
    return _reject(
        spec.label, spec.kind.value, f"{ctx.account.open_orders} open orders, limit {spec.value}"
    )


def check_price_band(spec: LimitSpec, ctx: OrderContext) -> PreTradeResult:
    """Reject a limit price further than ``spec.value`` bps from the reference (fat finger)."""
    limit_price = ctx.order.limit_price
    if limit_price is None:
        return ctx.approved
    deviation = abs(limit_price - ctx.price) / ctx.price * BPS
    if deviation <= spec.value:
        return ctx.approved
    detail = (
        f"limit price {limit_price} is {deviation:.1f} bps from reference {ctx.price}, "
        f"band {spec.value} bps"
    )
    return _reject(spec.label, spec.kind.value, detail)


class OrderRateWindow:
    """Timestamps of accepted orders in one scope, pruned as the window slides."""

    __slots__ = ("_stamps",)

    def __init__(self) -> None:
        """Create an empty window."""
        self._stamps: deque[datetime] = deque()

    def count(self, now: datetime, window: timedelta) -> int:
        """Drop stamps at or before ``now - window`` and return how many remain."""
        cutoff = now - window
        stamps = self._stamps
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
        return len(stamps)

    def record(self, now: datetime) -> None:
        """Record an accepted order at ``now`` (callers feed non-decreasing times)."""
        self._stamps.append(now)


def check_order_rate(spec: LimitSpec, ctx: OrderContext, window: OrderRateWindow) -> PreTradeResult:
    """Reject when ``spec.value`` orders were already accepted in the trailing window."""
    if ctx.now is None:
        raise RiskClockError("max_order_rate needs order.ts or an injected clock")
    seconds = spec.window_seconds
    if window.count(ctx.now, timedelta(seconds=seconds)) < spec.value:
        return ctx.approved
    return _reject(spec.label, spec.kind.value, f"more than {spec.value} orders in {seconds}s")


# --- loss gates ------------------------------------------------------------------------------


def loss_breach(spec: LimitSpec, account: AccountView) -> Decimal | None:
    """Return the loss fraction when ``spec`` (daily loss or drawdown) is breached, else None."""
    if spec.kind is LimitKind.MAX_DAILY_LOSS_PCT:
        base = account.day_start_equity
    elif spec.kind is LimitKind.MAX_DRAWDOWN_PCT:
        base = account.peak_equity
    else:
        raise InvalidLimitError(f"{spec.kind} is not a loss limit")
    if base <= 0:
        return None  # no meaningful reference yet (unfunded account)
    loss = (base - account.equity) / base
    return loss if loss > spec.value else None


def mode_for_breach(spec: LimitSpec) -> TradingMode:
    """Return the trading mode a breached loss limit asks for."""
    return TradingMode.HALTED if spec.action is LimitAction.HALT else TradingMode.REDUCING


def mode_allows(mode: TradingMode, ctx: OrderContext) -> bool:
    """Return True if ``mode`` lets the order through (same rules as ``HaltAwareHook``)."""
    if mode is TradingMode.ACTIVE:
        return True
    if mode is TradingMode.REDUCING:
        return ctx.reducing
    return ctx.reducing and ctx.order.reduce_only


def validate_order(order: OrderProposal) -> str:
    """Return why the order cannot be checked at all, or an empty string."""
    if order.side not in ("buy", "sell"):
        return f"side must be buy or sell, got {order.side!r}"
    if not order.quantity.is_finite() or order.quantity <= 0:
        return f"quantity must be > 0, got {order.quantity}"
    if not order.reference_price.is_finite() or order.reference_price <= 0:
        return f"reference price must be > 0, got {order.reference_price}"
    if order.limit_price is not None and (
        not order.limit_price.is_finite() or order.limit_price <= 0
    ):
        return f"limit price must be > 0, got {order.limit_price}"
    return ""


# --- the checker -----------------------------------------------------------------------------


_ExposureCheck = Callable[[LimitSpec, OrderContext], PreTradeResult]
_EXPOSURE_CHECKS: Mapping[LimitKind, _ExposureCheck] = {
    LimitKind.MAX_ORDER_NOTIONAL: check_order_notional,
    LimitKind.MAX_POSITION_PCT: check_position_pct,
    LimitKind.MAX_GROSS_EXPOSURE_PCT: check_gross_exposure,
    LimitKind.MAX_NET_EXPOSURE_PCT: check_net_exposure,
}
_RateKey = tuple[str, LimitScope, str, int]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Limits sorted into evaluation stages once, when they are loaded."""

    limits: tuple[LimitSpec, ...]
    loss: tuple[LimitSpec, ...]
    hard: tuple[LimitSpec, ...]
    reductions: tuple[LimitSpec, ...]
    needs_clock: bool

    @classmethod
    def compile(cls, limits: Iterable[LimitSpec]) -> _Plan:
        """Validate and stage ``limits``; disabled limits are kept but never evaluated."""
        specs = tuple(limits)
        for spec in specs:
            if not isinstance(spec, LimitSpec):
                raise InvalidLimitError(f"expected LimitSpec, got {type(spec).__name__}")
        live = [s for s in specs if s.enabled]
        loss = tuple(s for s in live if s.kind in LOSS_KINDS)
        reductions = tuple(
            s
            for s in live
            if s.action is LimitAction.REDUCE and s.kind not in LOSS_KINDS | _HARD_KINDS
        )
        hard = tuple(s for s in live if s not in loss and s not in reductions)
        needs_clock = any(s.kind is LimitKind.MAX_ORDER_RATE for s in live)
        return cls(specs, loss, hard, reductions, needs_clock)


class RiskChecker:
    """Apply data-defined limits to every order; satisfies ``trading.engine.hooks.PreTradeHook``.

    Breaches become ``RiskEventRecord``s and requested trading-mode changes become
    ``ModeChangeRequest``s, both queued until the caller drains them. The checker remembers a
    requested mode per account and enforces it until the account view shows it applied.
    """

    def __init__(
        self,
        limits: Iterable[LimitSpec],
        clock: Callable[[], datetime] | None = None,
        *,
        lot_sizes: Mapping[str, Decimal] | None = None,
        default_lot: Decimal = DEFAULT_LOT_SIZE,
        correlations: CorrelationTracker | None = None,
    ) -> None:
        """Load ``limits``; ``clock`` gives the time when an order carries no ``ts``."""
        self._plan = _Plan.compile(limits)
        self._clock = clock
        self._lots = dict(lot_sizes or {})
        self._default_lot = default_lot
        self.correlations = correlations or CorrelationTracker()
        self._rates: dict[_RateKey, OrderRateWindow] = {}
        self._pending: dict[str, TradingMode] = {}
        self._events: list[RiskEventRecord] = []
        self._mode_changes: list[ModeChangeRequest] = []

    @property
    def limits(self) -> tuple[LimitSpec, ...]:
        """Return the limits currently in force (including disabled ones)."""
        return self._plan.limits

    def replace_limits(self, limits: Iterable[LimitSpec]) -> None:
        """Swap in a new limit set atomically; a bad set raises and leaves the old one."""
        plan = _Plan.compile(limits)
        self._plan = plan  # one reference swap: a concurrent check sees old or new, never a mix
        keep = {(s.scope, s.scope_value, s.window_seconds) for s in plan.hard if _is_rate(s)}
        for key in [k for k in self._rates if k[1:] not in keep]:
            del self._rates[key]

    def update_returns(self, symbol: str, ret: float) -> None:
        """Feed one return of ``symbol`` to the correlation limit."""
        self.correlations.update_return(symbol, ret)

    def update_returns_batch(self, returns: Mapping[str, float]) -> None:
        """Feed one return per symbol (a closed bar across the universe) in one refresh."""
        self.correlations.update_returns(returns)

    def update_price(self, symbol: str, price: float) -> None:
        """Feed one price of ``symbol``; the return is derived from the previous price."""
        self.correlations.update_price(symbol, price)

    def set_lot_size(self, symbol: str, lot_size: Decimal) -> None:
        """Set the quantity step reductions of ``symbol`` are rounded down to."""
        if lot_size <= 0:
            raise InvalidLimitError(f"{symbol}: lot size must be > 0, got {lot_size}")
        self._lots[symbol] = lot_size

    def drain_events(self) -> list[RiskEventRecord]:
        """Return and clear the queued risk events."""
        events, self._events = self._events, []
        return events

    def drain_mode_changes(self) -> list[ModeChangeRequest]:
        """Return and clear the queued trading-mode change requests."""
        changes, self._mode_changes = self._mode_changes, []
        return changes

    def clear_pending(self, account: str) -> None:
        """Forget a requested mode the caller declined to apply (e.g. an operator override)."""
        self._pending.pop(account, None)

    def effective_mode(self, account: AccountView) -> TradingMode:
        """Return the stricter of the account's mode and the mode this checker requested."""
        pending = self._pending.get(account.name)
        if pending is None:
            return account.mode
        if MODE_RANK[account.mode] >= MODE_RANK[pending]:
            del self._pending[account.name]  # the caller applied it (or something stricter)
            return account.mode
        return pending

    def check_account(self, account: AccountView, now: datetime | None = None) -> TradingMode:
        """Evaluate global/account loss limits without an order (call on every mark-to-market)."""
        ts = now if now is not None else self._now_or_none(None)
        for spec in self._plan.loss:
            in_scope = spec.scope is LimitScope.GLOBAL or (
                spec.scope is LimitScope.ACCOUNT and spec.scope_value == account.name
            )
            if in_scope and spec.enabled:
                loss = loss_breach(spec, account)
                if loss is not None:
                    self._request_mode(account, spec, _loss_reason(spec, loss), ts)
        return self.effective_mode(account)

    def check(self, order: OrderProposal, account: AccountView) -> PreTradeResult:
        """Approve, reduce or reject ``order`` against every limit in scope."""
        plan = self._plan
        problem = validate_order(order)
        now = self._now(order) if plan.needs_clock else self._now_or_none(order)
        if problem:
            result = _reject(ORDER_VALIDATION, ORDER_VALIDATION, problem)
        else:
            lot = self._lots.get(order.symbol, self._default_lot)
            ctx = OrderContext.build(order, account, lot, now)
            result = self._mode_gate(ctx) or self._loss_gates(plan, ctx)
            if result is None:
                result = self._reduce_then_judge(plan, ctx)
            if result.accepted:
                self._record_rate(plan, ctx)
        if result.decision is not Decision.APPROVE:
            self._record_result(order, result, now)
        return result

    # --- stages ------------------------------------------------------------------------------

    def _mode_gate(self, ctx: OrderContext) -> PreTradeResult | None:
        """Reject orders the (effective) trading mode does not allow."""
        mode = self.effective_mode(ctx.account)
        if mode_allows(mode, ctx):
            return None
        return _reject(TRADING_STATE, TRADING_STATE, _mode_reason(mode))

    def _loss_gates(self, plan: _Plan, ctx: OrderContext) -> PreTradeResult | None:
        """Ask for REDUCING/HALTED on a loss breach and reject what that mode forbids."""
        verdict: PreTradeResult | None = None
        for spec in plan.loss:
            if not spec.applies_to(ctx.order):
                continue
            loss = loss_breach(spec, ctx.account)
            if loss is None:
                continue
            reason = _loss_reason(spec, loss)
            self._request_mode(ctx.account, spec, reason, ctx.now)
            mode = mode_for_breach(spec)
            if verdict is None and not mode_allows(mode, ctx):
                verdict = _reject(spec.label, spec.kind.value, f"{reason}; {_mode_reason(mode)}")
        return verdict

    def _reduce_then_judge(self, plan: _Plan, ctx: OrderContext) -> PreTradeResult:
        """Apply the reductions, then the hard limits to the order as reduced."""
        reduced = self._reductions(plan, ctx)
        if reduced.decision is Decision.REJECT:
            return reduced
        judged = ctx
        if reduced.decision is Decision.REDUCE:
            smaller = replace(ctx.order, quantity=reduced.quantity)
            judged = OrderContext.build(smaller, ctx.account, ctx.lot, ctx.now)
        return self._hard_rejects(plan, judged) or reduced

    def _hard_rejects(self, plan: _Plan, ctx: OrderContext) -> PreTradeResult | None:
        """Return the first rejection among limits that never reduce."""
        for spec in plan.hard:
            if not spec.applies_to(ctx.order):
                continue
            result = self._evaluate(spec, ctx)
            if result.decision is not Decision.APPROVE:
                if spec.action is LimitAction.HALT:
                    self._request_mode(ctx.account, spec, result.reason, ctx.now)
                return PreTradeResult(Decision.REJECT, _ZERO, result.reason, result.limit)
        return None

    def _reductions(self, plan: _Plan, ctx: OrderContext) -> PreTradeResult:
        """Return the smallest reduction (or the first rejection) among reducing limits."""
        best = ctx.approved
        for spec in plan.reductions:
            if not spec.applies_to(ctx.order):
                continue
            result = self._evaluate(spec, ctx)
            if result.decision is Decision.REJECT:
                return result
            if result.quantity < best.quantity:
                best = result
        return best

    def _evaluate(self, spec: LimitSpec, ctx: OrderContext) -> PreTradeResult:
        """Run the check for ``spec.kind``."""
        kind = spec.kind
        exposure = _EXPOSURE_CHECKS.get(kind)
        if exposure is not None:
            return exposure(spec, ctx)
        if kind is LimitKind.MAX_CORRELATION:
            return check_correlation(spec, ctx, self.correlations)
        if kind is LimitKind.MAX_OPEN_ORDERS:
            return check_open_orders(spec, ctx)
        if kind is LimitKind.PRICE_BAND_BPS:
            return check_price_band(spec, ctx)
        if kind is LimitKind.MAX_ORDER_RATE:
            return check_order_rate(spec, ctx, self._rate_window(spec, ctx.order.account))
        raise InvalidLimitError(f"{kind} is not evaluated per order")

    # --- bookkeeping -------------------------------------------------------------------------

    def _rate_window(self, spec: LimitSpec, account: str) -> OrderRateWindow:
        """Return the window counting ``account``'s orders in ``spec``'s scope."""
        key = (account, spec.scope, spec.scope_value, spec.window_seconds)
        window = self._rates.get(key)
        if window is None:
            window = self._rates[key] = OrderRateWindow()
        return window

    def _record_rate(self, plan: _Plan, ctx: OrderContext) -> None:
        """Count an accepted order in every rate window it falls in."""
        if not plan.needs_clock or ctx.now is None:
            return
        for spec in plan.hard:
            if _is_rate(spec) and spec.applies_to(ctx.order):
                self._rate_window(spec, ctx.order.account).record(ctx.now)

    def _request_mode(
        self, account: AccountView, spec: LimitSpec, reason: str, ts: datetime | None
    ) -> None:
        """Queue a mode change when ``spec``'s breach asks for a stricter mode than in force."""
        target = mode_for_breach(spec)
        if MODE_RANK[target] <= MODE_RANK[self.effective_mode(account)]:
            return
        self._pending[account.name] = target
        self._mode_changes.append(
            ModeChangeRequest(account.name, target, reason, spec.kind.value, ts)
        )
        context = {"account": account.name, "mode": target.value, "equity": str(account.equity)}
        self._events.append(
            RiskEventRecord(
                Severity.CRITICAL,
                spec.kind.value,
                f"{reason}; {target.value}",
                context,
                account.name,
                ts,
            )
        )

    def _record_result(
        self, order: OrderProposal, result: PreTradeResult, ts: datetime | None
    ) -> None:
        """Queue an event for a reduced (info) or rejected (warning) order."""
        severity = Severity.INFO if result.decision is Decision.REDUCE else Severity.WARNING
        context = {
            "decision": result.decision.value,
            "symbol": order.symbol,
            "side": order.side,
            "quantity": str(order.quantity),
            "approved_quantity": str(result.quantity),
            "reference_price": str(order.reference_price),
            "limit_price": None if order.limit_price is None else str(order.limit_price),
            "strategy": order.strategy,
        }
        self._events.append(
            RiskEventRecord(severity, result.limit, result.reason, context, order.account, ts)
        )

    def _now(self, order: OrderProposal | None) -> datetime:
        """Return the order's timestamp, else the injected clock's time."""
        now = self._now_or_none(order)
        if now is None:
            raise RiskClockError("the order has no ts and no clock was injected")
        return now

    def _now_or_none(self, order: OrderProposal | None) -> datetime | None:
        """Return the order's timestamp, the clock's time, or None."""
        if order is not None and order.ts is not None:
            return order.ts
        return self._clock() if self._clock is not None else None


def _is_rate(spec: LimitSpec) -> bool:
    """Return True for an order-rate limit."""
    return spec.kind is LimitKind.MAX_ORDER_RATE


def _loss_reason(spec: LimitSpec, loss: Decimal) -> str:
    """Describe a loss-limit breach."""
    what = "daily loss" if spec.kind is LimitKind.MAX_DAILY_LOSS_PCT else "drawdown"
    return f"{spec.label}: {what} {loss:.2%} exceeds {spec.value:.2%}"


def _mode_reason(mode: TradingMode) -> str:
    """Explain what a restrictive mode allows."""
    if mode is TradingMode.HALTED:
        return "account halted: only reduce-only orders that shrink a position are accepted"
    return f"account {mode.value}: only risk-reducing orders are accepted"
