"""Pre-trade checks and RiskChecker: hand-computed limits, evaluation order, events, modes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.engine.checks import RiskChecker
from risk.engine.correlation import CorrelationTracker
from risk.engine.errors import InvalidLimitError, RiskClockError
from risk.engine.events import Severity
from risk.engine.limits import LimitSpec
from tests.risk.engine.helpers import T0, account, order, position, spec
from trading.engine.hooks import (
    AccountView,
    Decision,
    OrderProposal,
    PreTradeHook,
    PreTradeResult,
    TradingMode,
    is_risk_reducing,
)

APPROVE, REDUCE, REJECT = Decision.APPROVE, Decision.REDUCE, Decision.REJECT
LOT1 = {"BTC-USD": D("1")}


def run(
    limits: list[LimitSpec], o: OrderProposal, acct: AccountView | None = None
) -> PreTradeResult:
    """Check one order on a fresh checker with a lot size of 1 BTC."""
    return RiskChecker(limits, lot_sizes=LOT1).check(o, acct or account())


def expect(result: PreTradeResult, decision: Decision, qty: str, limit: str = "") -> None:
    """Assert decision, quantity, and that the reason names the limit."""
    assert (result.decision, result.quantity) == (decision, D(qty)), result.reason
    if limit:
        assert result.limit == limit
        assert result.reason.startswith(limit), result.reason


def test_risk_checker_satisfies_the_pre_trade_hook_protocol() -> None:
    hook: PreTradeHook = RiskChecker([])
    expect(hook.check(order(), account()), APPROVE, "1")


@pytest.mark.parametrize(
    ("qty", "price", "action", "decision", "expected"),
    [
        ("5", "100", "reject", APPROVE, "5"),
        ("10", "100", "reject", APPROVE, "10"),  # exactly at the limit
        ("15", "100", "reject", REJECT, "0"),
        ("15", "100", "reduce", REDUCE, "10"),
        ("15", "300", "reduce", REDUCE, "3"),  # 1 000 / 300 = 3.33 -> lot 1
        ("1", "3000", "reduce", REJECT, "0"),  # not even one lot fits
    ],
)
def test_max_order_notional(
    qty: str, price: str, action: str, decision: Decision, expected: str
) -> None:
    result = run([spec("max_order_notional", "1000", action)], order(qty=qty, price=price))
    expect(result, decision, expected, "max_order_notional" if decision is not APPROVE else "")


# Equity 100 000, 20 % cap = 20 000 = 200 BTC at 100.
@pytest.mark.parametrize(
    ("held", "side", "qty", "action", "decision", "expected"),
    [
        ("0", "buy", "150", "reduce", APPROVE, "150"),
        ("0", "buy", "250", "reduce", REDUCE, "200"),
        ("100", "buy", "150", "reduce", REDUCE, "100"),
        ("100", "buy", "150", "reject", REJECT, "0"),
        ("250", "buy", "1", "reduce", REJECT, "0"),  # already over the cap: no room at all
        ("250", "sell", "50", "reject", APPROVE, "50"),  # risk-reducing always passes
        ("100", "sell", "400", "reduce", REDUCE, "300"),  # flip: close 100, open 200 short
        ("-100", "buy", "250", "reject", APPROVE, "250"),  # flip to +150 fits
        ("0", "sell", "201", "reduce", REDUCE, "200"),  # shorts are capped the same way
    ],
)
def test_max_position_pct(
    held: str, side: str, qty: str, action: str, decision: Decision, expected: str
) -> None:
    acct = account("100000", position("BTC-USD", held, "100"))
    result = run([spec("max_position_pct", "0.20", action)], order(side, qty), acct)
    expect(result, decision, expected, "max_position_pct" if decision is not APPROVE else "")


def test_symbol_scoped_position_limit_only_binds_its_symbol() -> None:
    limits = [spec("max_position_pct", "0.01", scope="symbol", scope_value="ETH-USD")]
    expect(run(limits, order(qty="500")), APPROVE, "500")
    result = run(limits, order(qty="500", symbol="ETH-USD"))
    expect(result, REJECT, "0", "max_position_pct")
    assert result.reason.startswith("max_position_pct[symbol=ETH-USD]")


# Gross cap 100 % of 100 000. ETH long 60 000 and SOL short 20 000 count in absolute value.
@pytest.mark.parametrize(
    ("others", "held", "side", "qty", "action", "decision", "expected"),
    [
        ([("ETH-USD", "30", "2000")], "0", "buy", "300", "reduce", APPROVE, "300"),
        ([("ETH-USD", "30", "2000")], "0", "buy", "500", "reduce", REDUCE, "400"),
        ([("ETH-USD", "30", "2000")], "0", "buy", "500", "reject", REJECT, "0"),
        (
            [("ETH-USD", "30", "2000"), ("SOL-USD", "-200", "100")],
            "0",
            "sell",
            "500",
            "reduce",
            REDUCE,
            "200",
        ),
        # flip: held 100 (10 000), room for BTC 40 000 -> close 100 + open 400 short
        ([("ETH-USD", "30", "2000")], "100", "sell", "600", "reduce", REDUCE, "500"),
    ],
)
def test_max_gross_exposure(
    others: list[tuple[str, str, str]],
    held: str,
    side: str,
    qty: str,
    action: str,
    decision: Decision,
    expected: str,
) -> None:
    acct = account("100000", *(position(*o) for o in others), position("BTC-USD", held, "100"))
    result = run([spec("max_gross_exposure_pct", "1.0", action)], order(side, qty), acct)
    expect(result, decision, expected, "max_gross_exposure_pct" if decision != APPROVE else "")


# Net cap 50 % = 50 000; ETH long 60 000 already exceeds it.
@pytest.mark.parametrize(
    ("side", "qty", "decision", "expected"),
    [
        ("buy", "10", REJECT, "0"),  # adds to an over-limit net long
        ("sell", "100", APPROVE, "100"),  # hedges: net 50 000
        ("sell", "1100", APPROVE, "1100"),  # net −50 000: at the cap on the other side
        ("sell", "1200", REDUCE, "1100"),
    ],
)
def test_max_net_exposure(side: str, qty: str, decision: Decision, expected: str) -> None:
    acct = account("100000", position("ETH-USD", "30", "2000"))
    result = run([spec("max_net_exposure_pct", "0.5", "reduce")], order(side, qty), acct)
    expect(result, decision, expected, "max_net_exposure_pct" if decision != APPROVE else "")


def test_risk_reducing_orders_pass_exposure_limits_but_not_notional() -> None:
    # ETH short 60 000 + BTC long 10 000: net −50 000; selling BTC grows |net| but shrinks BTC
    acct = account("100000", position("ETH-USD", "-30", "2000"), position("BTC-USD", "100", "100"))
    o = order("sell", "50")
    assert is_risk_reducing(o, acct)
    exposure = [
        spec("max_net_exposure_pct", "0.1"),
        spec("max_gross_exposure_pct", "0.1"),
        spec("max_position_pct", "0.01"),
    ]
    expect(run(exposure, o, acct), APPROVE, "50")
    expect(run([spec("max_order_notional", "1000")], o, acct), REJECT, "0", "max_order_notional")


@pytest.mark.parametrize(("open_orders", "decision"), [(0, APPROVE), (2, APPROVE), (3, REJECT)])
def test_max_open_orders(open_orders: int, decision: Decision) -> None:
    acct = account(open_orders=open_orders)
    result = run([spec("max_open_orders", "3")], order(), acct)
    expect(result, decision, "1" if decision is APPROVE else "0")
    if decision is REJECT:
        assert result.reason.startswith("max_open_orders")


@pytest.mark.parametrize(
    ("limit", "decision"),
    [(None, APPROVE), ("100.5", APPROVE), ("99.5", APPROVE), ("100.51", REJECT), ("99.4", REJECT)],
)
def test_price_band(limit: str | None, decision: Decision) -> None:
    result = run([spec("price_band_bps", "50")], order(limit=limit))
    assert result.decision is decision
    if decision is REJECT:
        assert result.reason.startswith("price_band_bps") and "bps" in result.reason


def test_order_rate_window_counts_only_accepted_orders() -> None:
    checker = RiskChecker([spec("max_order_rate", "3", window_seconds=60)])
    acct = account()
    decisions = [
        checker.check(order(ts=T0 + timedelta(seconds=s)), acct).decision
        for s in (0, 10, 20, 30, 59, 60, 61)
    ]
    # 0, 10, 20 fill the window; 30 and 59 are rejected (not counted); at 60 the order from 0
    # has left the window (strictly older than 60 s is out); 61 sees 10, 20, 60 -> reject.
    assert decisions == [APPROVE, APPROVE, APPROVE, REJECT, REJECT, APPROVE, REJECT]


def test_order_rate_per_symbol_scope_and_injected_clock() -> None:
    now = [T0]
    checker = RiskChecker(
        [spec("max_order_rate", "1", scope="symbol", scope_value="BTC-USD", window_seconds=10)],
        clock=lambda: now[0],
    )
    acct = account()
    expect(checker.check(order(ts=None), acct), APPROVE, "1")
    expect(checker.check(order(ts=None), acct), REJECT, "0", "max_order_rate")
    expect(checker.check(order(symbol="ETH-USD", ts=None), acct), APPROVE, "1")
    now[0] = T0 + timedelta(seconds=11)
    expect(checker.check(order(ts=None), acct), APPROVE, "1")


def test_order_rate_without_any_time_source_raises() -> None:
    with pytest.raises(RiskClockError):
        RiskChecker([spec("max_order_rate", "1")]).check(order(ts=None), account())


def test_daily_loss_moves_to_reducing_once_and_lets_reducing_orders_through() -> None:
    checker = RiskChecker([spec("max_daily_loss_pct", "0.05", "reduce")], lot_sizes=LOT1)
    acct = account("94000", position("BTC-USD", "10", "100"), day_start="100000")
    result = checker.check(order("buy", "1"), acct)
    expect(result, REJECT, "0", "max_daily_loss_pct")
    assert "6.00%" in result.reason
    (change,) = checker.drain_mode_changes()
    assert (change.account, change.mode, change.limit_kind) == (
        "acct",
        TradingMode.REDUCING,
        "max_daily_loss_pct",
    )
    expect(checker.check(order("sell", "5"), acct), APPROVE, "5")
    expect(checker.check(order("buy", "1"), acct), REJECT, "0")
    assert checker.drain_mode_changes() == []  # requested once, not per order
    severities = [e.severity for e in checker.drain_events()]
    assert severities == [Severity.CRITICAL, Severity.WARNING, Severity.WARNING]
    # until the caller applies REDUCING the checker keeps enforcing it, even after a recovery
    recovered = account("96000", day_start="100000")
    expect(checker.check(order(), recovered), REJECT, "0", "trading_state")
    checker.check(order(), account(mode=TradingMode.REDUCING))  # the caller applied it
    # a new day: the runtime re-activates the account; within the limit nothing happens
    expect(checker.check(order(), recovered), APPROVE, "1")
    assert checker.drain_mode_changes() == []


def test_drawdown_halts_and_only_reduce_only_closing_orders_pass() -> None:
    checker = RiskChecker([spec("max_drawdown_pct", "0.2", "halt")])
    acct = account("150000", position("BTC-USD", "10", "100"), peak="200000")
    expect(checker.check(order("buy"), acct), REJECT, "0", "max_drawdown_pct")
    (change,) = checker.drain_mode_changes()
    assert change.mode is TradingMode.HALTED
    expect(checker.check(order("sell", "10"), acct), REJECT, "0")  # reducing, not reduce_only
    expect(checker.check(order("sell", "10", reduce_only=True), acct), APPROVE, "10")


def test_requested_mode_is_enforced_until_applied_then_cleared() -> None:
    checker = RiskChecker([spec("max_order_notional", "1000", "halt")])
    expect(checker.check(order(qty="20"), account()), REJECT, "0", "max_order_notional")
    (change,) = checker.drain_mode_changes()
    assert change.mode is TradingMode.HALTED
    # the account view has not caught up yet: the checker still refuses everything
    expect(checker.check(order(qty="1"), account()), REJECT, "0", "trading_state")
    # the caller applied HALTED, later an operator re-activated the account
    checker.check(order(), account(mode=TradingMode.HALTED))
    expect(checker.check(order(), account()), APPROVE, "1")


def test_check_account_detects_breach_without_orders() -> None:
    checker = RiskChecker([spec("max_drawdown_pct", "0.1", "halt")])
    assert checker.check_account(account("100000", peak="105000")) is TradingMode.ACTIVE
    assert checker.check_account(account("90000", peak="105000"), T0) is TradingMode.HALTED
    (change,) = checker.drain_mode_changes()
    assert (change.mode, change.ts) == (TradingMode.HALTED, T0)
    checker.clear_pending("acct")
    assert checker.effective_mode(account()) is TradingMode.ACTIVE


def test_trading_mode_is_evaluated_first() -> None:
    limits = [spec("max_position_pct", "0.2", "reduce")]
    acct = account(mode=TradingMode.REDUCING)
    expect(run(limits, order(qty="500"), acct), REJECT, "0", "trading_state")
    expect(run([], order(), account(mode=TradingMode.HALTED)), REJECT, "0", "trading_state")


def test_hard_rejects_come_before_reductions() -> None:
    limits = [spec("max_position_pct", "0.2", "reduce"), spec("max_order_notional", "1000")]
    expect(run(limits, order(qty="500")), REJECT, "0", "max_order_notional")


def test_hard_limits_judge_the_reduced_order() -> None:
    # An all-in order: the position limit shrinks it to 20 %, which the gross limit then accepts.
    limits = [spec("max_position_pct", "0.2", "reduce"), spec("max_gross_exposure_pct", "1.0")]
    expect(run(limits, order(qty="1500")), REDUCE, "200", "max_position_pct")
    held = account("100000", position("ETH-USD", "850", "100"))
    # 85 % already held elsewhere: even the reduced 20 % would break the gross limit.
    expect(run(limits, order(qty="1000"), held), REJECT, "0", "max_gross_exposure_pct")


def test_smallest_reduction_wins() -> None:
    limits = [
        spec("max_order_notional", "1000", "reduce"),  # -> 10
        spec("max_position_pct", "0.005", "reduce"),  # 500 / 100 -> 5
        spec("max_gross_exposure_pct", "0.5", "reduce"),  # -> 500
    ]
    expect(run(limits, order(qty="20")), REDUCE, "5", "max_position_pct")


def test_events_for_reductions_and_rejections() -> None:
    checker = RiskChecker([spec("max_order_notional", "1000", "reduce")], lot_sizes=LOT1)
    checker.check(order(qty="15", strategy="momo"), account())
    checker.check(order(qty="1", price="5000"), account())
    checker.check(order(qty="1"), account())  # approvals are silent
    reduced, rejected = checker.drain_events()
    assert (reduced.severity, reduced.limit_kind, reduced.account) == (
        Severity.INFO,
        "max_order_notional",
        "acct",
    )
    assert reduced.context["approved_quantity"] == "10"
    assert reduced.context["strategy"] == "momo"
    assert reduced.ts == T0
    assert rejected.severity is Severity.WARNING
    assert checker.drain_events() == []


@pytest.mark.parametrize(
    "bad",
    [order(qty="0"), order(price="0"), order(side="hold"), order(limit="-1")],
)
def test_invalid_orders_are_rejected(bad: OrderProposal) -> None:
    expect(run([], bad), REJECT, "0", "order_validation")


def test_replace_limits_swaps_atomically_and_keeps_old_on_error() -> None:
    checker = RiskChecker([spec("max_order_notional", "1000")])
    expect(checker.check(order(qty="20"), account()), REJECT, "0")
    checker.replace_limits([spec("max_order_notional", "5000")])
    expect(checker.check(order(qty="20"), account()), APPROVE, "20")
    with pytest.raises(InvalidLimitError):
        checker.replace_limits([spec("max_order_notional", "1"), "not a spec"])  # type: ignore[list-item]
    assert checker.limits == (spec("max_order_notional", "5000"),)


def test_replace_limits_keeps_rate_history_for_unchanged_windows() -> None:
    rate = spec("max_order_rate", "1", window_seconds=60)
    checker = RiskChecker([rate])
    expect(checker.check(order(), account()), APPROVE, "1")
    checker.replace_limits([rate, spec("max_open_orders", "10")])
    expect(checker.check(order(), account()), REJECT, "0", "max_order_rate")
    checker.replace_limits([spec("max_order_rate", "1", window_seconds=30)])
    expect(checker.check(order(), account()), APPROVE, "1")  # a new window starts empty


def test_disabled_limits_are_ignored() -> None:
    off = LimitSpec("max_order_notional", D("1"), enabled=False)  # type: ignore[arg-type]
    expect(run([off], order(qty="100")), APPROVE, "100")


# --- correlation -----------------------------------------------------------------------------


def _correlated_tracker() -> CorrelationTracker:
    """BTC and ETH move together (ρ = 1); SOL moves against them (ρ = −1)."""
    tracker = CorrelationTracker(window=50, min_observations=20)
    for i in range(30):
        r = 0.01 * ((i * 7) % 5 - 2)
        tracker.update_returns({"BTC-USD": r, "ETH-USD": 2 * r, "SOL-USD": -r})
    return tracker


# Cap: 30 % of 100 000 = 30 000 combined; BTC at 100.
@pytest.mark.parametrize(
    ("held", "side", "qty", "action", "decision", "expected"),
    [
        ([("ETH-USD", "10", "2000")], "buy", "50", "reject", APPROVE, "50"),  # 25 000
        ([("ETH-USD", "10", "2000")], "buy", "150", "reject", REJECT, "0"),  # 35 000
        ([("ETH-USD", "10", "2000")], "buy", "150", "reduce", REDUCE, "100"),
        ([("ETH-USD", "10", "2000")], "sell", "150", "reject", APPROVE, "150"),  # a hedge
        ([("SOL-USD", "200", "100")], "buy", "500", "reject", APPROVE, "500"),  # ρ −1, same side
        ([("SOL-USD", "200", "100")], "sell", "150", "reduce", REDUCE, "100"),
        ([("DOGE-USD", "1000000", "1")], "buy", "500", "reject", APPROVE, "500"),  # no returns
    ],
)
def test_correlation_limit(
    held: list[tuple[str, str, str]],
    side: str,
    qty: str,
    action: str,
    decision: Decision,
    expected: str,
) -> None:
    checker = RiskChecker(
        [spec("max_correlation", "0.8", action, max_combined_pct="0.3")],
        lot_sizes=LOT1,
        correlations=_correlated_tracker(),
    )
    result = checker.check(order(side, qty), account("100000", *(position(*h) for h in held)))
    expect(result, decision, expected, "max_correlation" if decision is not APPROVE else "")


def test_correlation_fed_through_the_checker_price_feed() -> None:
    checker = RiskChecker([spec("max_correlation", "0.8", max_combined_pct="0.1")])
    acct = account("100000", position("ETH-USD", "5", "2000"))
    expect(checker.check(order(qty="50"), acct), APPROVE, "50")  # correlation still unknown
    btc, eth = 100.0, 2000.0
    for i in range(25):
        move = 1.0 + 0.01 * ((i * 3) % 7 - 3)
        btc, eth = btc * move, eth * move
        checker.update_price("BTC-USD", btc)
        checker.update_price("ETH-USD", eth)
    assert checker.correlations.correlation("BTC-USD", "ETH-USD") == pytest.approx(1.0)
    expect(checker.check(order(qty="50"), acct), REJECT, "0", "max_correlation")


def test_lot_size_and_batch_returns_feed() -> None:
    checker = RiskChecker([spec("max_correlation", "0.8", "reduce", max_combined_pct="0.3")])
    for i in range(25):
        r = 0.01 * ((i * 3) % 7 - 3)
        checker.update_returns_batch({"BTC-USD": r, "ETH-USD": r})
    acct = account("100000", position("ETH-USD", "10", "2000"))
    expect(checker.check(order(qty="150", price="300"), acct), REDUCE, "33.33333333")
    checker.set_lot_size("BTC-USD", D("0.5"))
    expect(checker.check(order(qty="150", price="300"), acct), REDUCE, "33.0")
    with pytest.raises(InvalidLimitError):
        checker.set_lot_size("BTC-USD", D("0"))


# --- invariants ------------------------------------------------------------------------------

_qty = st.integers(min_value=1, max_value=5000).map(D)
_held = st.integers(min_value=-3000, max_value=3000).map(D)


@settings(max_examples=200, deadline=None)
@given(
    held=_held,
    other=_held,
    side=st.sampled_from(["buy", "sell"]),
    qty=_qty,
    pcts=st.tuples(*[st.sampled_from(["0.05", "0.2", "0.5", "1", "2"])] * 3),
)
def test_reductions_fit_and_reducing_orders_always_pass(
    held: D, other: D, side: str, qty: D, pcts: tuple[str, str, str]
) -> None:
    limits = [
        spec("max_position_pct", pcts[0], "reduce"),
        spec("max_gross_exposure_pct", pcts[1], "reduce"),
        spec("max_net_exposure_pct", pcts[2], "reduce"),
    ]
    acct = account(
        "100000", position("BTC-USD", str(held), "100"), position("ETH-USD", str(other), "50")
    )
    o = order(side, str(qty))
    result = run(limits, o, acct)
    if is_risk_reducing(o, acct):
        assert result.decision is APPROVE
    if result.decision is REDUCE:
        assert 0 < result.quantity < qty and result.quantity % 1 == 0
        again = order(side, str(result.quantity))
        assert run(limits, again, acct).decision is APPROVE  # the reduced order fits every limit
    if result.decision is APPROVE and not is_risk_reducing(o, acct):
        after = abs(held + o.signed_quantity) * 100
        assert after <= D(pcts[0]) * 100000 or after <= abs(held) * 100
