"""Per-account trading state machine and the kill switch.

Modes: ACTIVE → REDUCING (only risk-reducing orders) → HALTED (nothing new). Moving to HALTED
produces actions as data: cancel every open order and, when configured, flatten every position
with reduce-only market orders. The machine never executes them; the trading runtime does, and
``HaltAwareHook``/``RiskChecker`` let those reduce-only orders through a halted account.

Leaving HALTED needs an operator (``manual=True``): software that halted on a drawdown must not
be able to talk itself back into trading.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from risk.engine.errors import IllegalTransitionError
from risk.engine.events import MODE_RANK, ModeChangeRequest
from trading.engine.hooks import PositionView, TradingMode

LEGAL_TRANSITIONS: Mapping[TradingMode, frozenset[TradingMode]] = {
    TradingMode.ACTIVE: frozenset({TradingMode.REDUCING, TradingMode.HALTED}),
    TradingMode.REDUCING: frozenset({TradingMode.ACTIVE, TradingMode.HALTED}),
    TradingMode.HALTED: frozenset({TradingMode.ACTIVE, TradingMode.REDUCING}),
}
MANUAL_ONLY_FROM: frozenset[TradingMode] = frozenset({TradingMode.HALTED})


class ActionKind(StrEnum):
    """What the runtime must do after a transition."""

    CANCEL_OPEN_ORDERS = "cancel_open_orders"
    FLATTEN_POSITION = "flatten_position"


@dataclass(frozen=True, slots=True)
class KillSwitchAction:
    """One action for the runtime; flatten actions describe a reduce-only market order."""

    kind: ActionKind
    account: str
    symbol: str = ""
    side: str = ""  # "sell" closes a long, "buy" closes a short
    quantity: Decimal = Decimal(0)
    reduce_only: bool = True
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StateTransition:
    """A mode change that happened, with the actions it requires."""

    account: str
    previous: TradingMode
    mode: TradingMode
    reason: str
    manual: bool = False
    ts: datetime | None = None
    actions: tuple[KillSwitchAction, ...] = ()


def halt_actions(
    account: str,
    reason: str,
    positions: Mapping[str, PositionView] | None = None,
    flatten: bool = False,
) -> tuple[KillSwitchAction, ...]:
    """Return "cancel open orders" and, if ``flatten``, one closing order per open position."""
    actions = [KillSwitchAction(ActionKind.CANCEL_OPEN_ORDERS, account, reason=reason)]
    if flatten and positions:
        for symbol in sorted(positions):
            qty = positions[symbol].quantity
            if qty == 0:
                continue
            side = "sell" if qty > 0 else "buy"
            actions.append(
                KillSwitchAction(
                    ActionKind.FLATTEN_POSITION, account, symbol, side, abs(qty), True, reason
                )
            )
    return tuple(actions)


class TradingStateMachine:
    """Hold each account's trading mode and enforce legal transitions."""

    def __init__(
        self,
        initial: Mapping[str, TradingMode] | None = None,
        *,
        flatten_on_halt: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Start from ``initial`` modes (e.g. reloaded from the DB); unknown accounts are ACTIVE."""
        modes = initial or {}
        self._modes: dict[str, TradingMode] = {k: TradingMode(v) for k, v in modes.items()}
        self.flatten_on_halt = flatten_on_halt
        self._clock = clock

    def mode(self, account: str) -> TradingMode:
        """Return the account's current mode."""
        return self._modes.get(account, TradingMode.ACTIVE)

    @property
    def modes(self) -> Mapping[str, TradingMode]:
        """Return every account with an explicitly recorded mode."""
        return dict(self._modes)

    def can_transition(self, account: str, target: TradingMode, *, manual: bool = False) -> bool:
        """Return True if moving ``account`` to ``target`` is allowed (same mode counts)."""
        current = self.mode(account)
        if current is target:
            return True
        if target not in LEGAL_TRANSITIONS[current]:
            return False
        return manual or current not in MANUAL_ONLY_FROM

    def transition(
        self,
        account: str,
        target: TradingMode,
        reason: str,
        *,
        manual: bool = False,
        positions: Mapping[str, PositionView] | None = None,
        ts: datetime | None = None,
    ) -> StateTransition | None:
        """Move ``account`` to ``target``; return None if already there, raise if illegal."""
        target = TradingMode(target)
        current = self.mode(account)
        if current is target:
            return None
        if not self.can_transition(account, target, manual=manual):
            raise IllegalTransitionError(
                f"{account}: {current.value} -> {target.value} is not allowed"
                + (" without an operator" if current in MANUAL_ONLY_FROM else "")
            )
        self._modes[account] = target
        actions: tuple[KillSwitchAction, ...] = ()
        if target is TradingMode.HALTED:
            actions = halt_actions(account, reason, positions, self.flatten_on_halt)
        when = ts if ts is not None else (self._clock() if self._clock else None)
        return StateTransition(account, current, target, reason, manual, when, actions)

    def kill(
        self,
        account: str,
        reason: str,
        positions: Mapping[str, PositionView] | None = None,
        *,
        manual: bool = False,
        ts: datetime | None = None,
    ) -> StateTransition | None:
        """Pull the kill switch: move to HALTED and return the cancel/flatten actions."""
        return self.transition(
            account, TradingMode.HALTED, reason, manual=manual, positions=positions, ts=ts
        )

    def apply(
        self, request: ModeChangeRequest, positions: Mapping[str, PositionView] | None = None
    ) -> StateTransition | None:
        """Apply a checker's request; requests only escalate, so a stricter mode is kept."""
        current = self.mode(request.account)
        if MODE_RANK[request.mode] <= MODE_RANK[current]:
            return None
        return self.transition(
            request.account, request.mode, request.reason, positions=positions, ts=request.ts
        )
