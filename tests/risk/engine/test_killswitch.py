"""Trading state machine and kill switch: legal transitions and halt actions as data."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.engine.errors import IllegalTransitionError
from risk.engine.events import ModeChangeRequest
from risk.engine.killswitch import (
    ActionKind,
    KillSwitchAction,
    TradingStateMachine,
    halt_actions,
)
from trading.engine.hooks import PositionView, TradingMode

A, R, H = TradingMode.ACTIVE, TradingMode.REDUCING, TradingMode.HALTED
T0 = datetime(2024, 3, 1, tzinfo=UTC)
POSITIONS = {
    "ETH-USD": PositionView("ETH-USD", D("-3"), D("2000"), D("2100")),
    "BTC-USD": PositionView("BTC-USD", D("0.5"), D("40000"), D("41000")),
    "SOL-USD": PositionView("SOL-USD", D("0"), D("0"), D("100")),
}


@pytest.mark.parametrize(
    ("start", "target", "manual", "allowed"),
    [
        (A, R, False, True),
        (A, H, False, True),
        (R, A, False, True),  # e.g. the next trading day resets the daily loss
        (R, H, False, True),
        (H, A, False, False),  # software never un-halts itself
        (H, R, False, False),
        (H, A, True, True),
        (H, R, True, True),
    ],
)
def test_transition_table(
    start: TradingMode, target: TradingMode, manual: bool, allowed: bool
) -> None:
    sm = TradingStateMachine({"acct": start})
    assert sm.can_transition("acct", target, manual=manual) is allowed
    if allowed:
        change = sm.transition("acct", target, "why", manual=manual, ts=T0)
        assert change is not None
        assert (change.previous, change.mode, change.manual, change.ts) == (
            start,
            target,
            manual,
            T0,
        )
        assert sm.mode("acct") is target
    else:
        with pytest.raises(IllegalTransitionError, match="operator"):
            sm.transition("acct", target, "why", manual=manual)
        assert sm.mode("acct") is start


def test_same_mode_is_a_no_op_and_unknown_accounts_are_active() -> None:
    sm = TradingStateMachine({"acct": "reducing"})  # type: ignore[dict-item]
    assert sm.mode("acct") is R and sm.mode("other") is A
    assert sm.transition("acct", R, "again") is None
    assert sm.modes == {"acct": R}


def test_kill_cancels_orders_and_flattens_when_configured() -> None:
    sm = TradingStateMachine(flatten_on_halt=True, clock=lambda: T0)
    change = sm.kill("acct", "max_drawdown_pct breached", POSITIONS)
    assert change is not None and change.mode is H and change.ts == T0
    reason = "max_drawdown_pct breached"
    assert change.actions == (
        KillSwitchAction(ActionKind.CANCEL_OPEN_ORDERS, "acct", reason=reason),
        KillSwitchAction(
            ActionKind.FLATTEN_POSITION, "acct", "BTC-USD", "sell", D("0.5"), True, reason
        ),
        KillSwitchAction(
            ActionKind.FLATTEN_POSITION, "acct", "ETH-USD", "buy", D("3"), True, reason
        ),
    )
    assert sm.kill("acct", "again", POSITIONS) is None  # already halted


def test_kill_without_flatten_only_cancels() -> None:
    change = TradingStateMachine().kill("acct", "operator", POSITIONS, manual=True)
    assert change is not None
    assert [a.kind for a in change.actions] == [ActionKind.CANCEL_OPEN_ORDERS]


def test_non_halt_transitions_carry_no_actions() -> None:
    sm = TradingStateMachine(flatten_on_halt=True)
    change = sm.transition("acct", R, "daily loss", positions=POSITIONS)
    assert change is not None and change.actions == ()


def test_halt_actions_helper() -> None:
    actions = halt_actions("acct", "x", POSITIONS, flatten=True)
    assert [(a.kind, a.symbol) for a in actions] == [
        (ActionKind.CANCEL_OPEN_ORDERS, ""),
        (ActionKind.FLATTEN_POSITION, "BTC-USD"),
        (ActionKind.FLATTEN_POSITION, "ETH-USD"),
    ]
    assert halt_actions("acct", "x", None, flatten=True) == (actions[0],)


def test_apply_checker_requests_only_escalates() -> None:
    sm = TradingStateMachine(flatten_on_halt=True)
    reducing = ModeChangeRequest("acct", R, "daily loss", "max_daily_loss_pct", T0)
    halted = ModeChangeRequest("acct", H, "drawdown", "max_drawdown_pct", T0)
    first = sm.apply(reducing)
    assert first is not None and first.mode is R and first.ts == T0
    assert sm.apply(reducing) is None
    second = sm.apply(halted, POSITIONS)
    assert second is not None and len(second.actions) == 3
    assert sm.apply(reducing) is None and sm.mode("acct") is H


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([A, R, H]), st.booleans()), max_size=30))
def test_halted_is_left_only_by_an_operator(steps: list[tuple[TradingMode, bool]]) -> None:
    sm = TradingStateMachine(flatten_on_halt=True)
    for target, manual in steps:
        before = sm.mode("acct")
        try:
            change = sm.transition("acct", target, "step", manual=manual, positions=POSITIONS)
        except IllegalTransitionError:
            assert before is H and not manual
            assert sm.mode("acct") is H
            continue
        if change is None:
            assert before is target
            continue
        assert sm.mode("acct") is target
        if target is H:
            assert change.actions[0].kind is ActionKind.CANCEL_OPEN_ORDERS
            assert len(change.actions) == 3
        else:
            assert change.actions == ()
