"""Risk limits as data: what is limited, how far, what happens on a breach, and to whom it applies.

Units of ``LimitSpec.value`` by kind (fractions, not percents: 0.20 means 20 %):

===========================  ===========================================================
kind                         value
===========================  ===========================================================
max_order_notional           quote currency (quantity × reference price)
max_position_pct             |position value| / equity after the order
max_gross_exposure_pct       Σ|position values| / equity after the order
max_net_exposure_pct         |Σ position values| / equity after the order
max_open_orders              count of the account's open orders including this one
max_order_rate               accepted orders per ``params["window_seconds"]`` (default 60)
price_band_bps               |limit price − reference| / reference, in basis points
max_daily_loss_pct           (day start equity − equity) / day start equity
max_drawdown_pct             (peak equity − equity) / peak equity
max_correlation              return correlation above which symbols count as one bet; the
                             combined cap is ``params["max_combined_pct"]`` (default 0.50)
===========================  ===========================================================

``action``: ``reject`` refuses the order; ``reduce`` shrinks it to fit when the kind allows
(otherwise rejects); ``halt`` rejects and asks for the HALTED trading mode. For the two loss
limits the action picks the mode requested on a breach: ``halt`` → HALTED, else REDUCING.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from risk.engine.constants import (
    DEFAULT_CORRELATED_EXPOSURE_PCT,
    DEFAULT_RATE_WINDOW_SECONDS,
    MAX_DAILY_LOSS_PCT,
    MAX_DRAWDOWN_PCT,
    MAX_POSITION_SIZE_PCT,
)
from risk.engine.errors import InvalidLimitError
from trading.engine.hooks import OrderProposal


class LimitKind(StrEnum):
    """What a limit bounds; the ORM ``RiskLimit.kind`` stores these values."""

    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_POSITION_PCT = "max_position_pct"
    MAX_GROSS_EXPOSURE_PCT = "max_gross_exposure_pct"
    MAX_NET_EXPOSURE_PCT = "max_net_exposure_pct"
    MAX_OPEN_ORDERS = "max_open_orders"
    MAX_ORDER_RATE = "max_order_rate"
    PRICE_BAND_BPS = "price_band_bps"
    MAX_DAILY_LOSS_PCT = "max_daily_loss_pct"
    MAX_DRAWDOWN_PCT = "max_drawdown_pct"
    MAX_CORRELATION = "max_correlation"


class LimitAction(StrEnum):
    """What happens when a limit is breached."""

    REJECT = "reject"
    REDUCE = "reduce"
    HALT = "halt"


class LimitScope(StrEnum):
    """Which orders a limit applies to."""

    GLOBAL = "global"
    ACCOUNT = "account"
    SYMBOL = "symbol"
    STRATEGY = "strategy"


# Kinds whose breach can be cured by a smaller quantity; the others can only reject.
REDUCIBLE_KINDS: frozenset[LimitKind] = frozenset(
    {
        LimitKind.MAX_ORDER_NOTIONAL,
        LimitKind.MAX_POSITION_PCT,
        LimitKind.MAX_GROSS_EXPOSURE_PCT,
        LimitKind.MAX_NET_EXPOSURE_PCT,
        LimitKind.MAX_CORRELATION,
    }
)
# Kinds that gate the whole account through its trading mode rather than one order.
LOSS_KINDS: frozenset[LimitKind] = frozenset(
    {LimitKind.MAX_DAILY_LOSS_PCT, LimitKind.MAX_DRAWDOWN_PCT}
)


def _to_decimal(raw: Any, what: str) -> Decimal:
    """Convert ``raw`` to Decimal via ``str`` so floats keep their printed value."""
    if isinstance(raw, Decimal):
        return raw
    try:
        return Decimal(str(raw))
    except (InvalidOperation, ValueError) as exc:
        raise InvalidLimitError(f"{what}: {raw!r} is not a number") from exc


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One risk limit; see the module docstring for the unit of ``value`` per kind."""

    kind: LimitKind
    value: Decimal
    action: LimitAction = LimitAction.REJECT
    scope: LimitScope = LimitScope.GLOBAL
    scope_value: str = ""
    enabled: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Coerce strings to enums/Decimal and validate, so bad DB rows fail loudly at load."""
        try:
            object.__setattr__(self, "kind", LimitKind(self.kind))
            object.__setattr__(self, "action", LimitAction(self.action))
            object.__setattr__(self, "scope", LimitScope(self.scope))
        except ValueError as exc:
            raise InvalidLimitError(str(exc)) from exc
        object.__setattr__(self, "value", _to_decimal(self.value, self.kind.value))
        if not self.value.is_finite() or self.value < 0:
            raise InvalidLimitError(f"{self.kind}: value must be >= 0, got {self.value}")
        if self.kind is LimitKind.MAX_CORRELATION and self.value > 1:
            raise InvalidLimitError(f"{self.kind}: correlation threshold must be <= 1")
        if self.scope is not LimitScope.GLOBAL and not self.scope_value:
            raise InvalidLimitError(f"{self.kind}: scope {self.scope} needs a scope_value")
        if self.kind is LimitKind.MAX_ORDER_RATE and self.window_seconds <= 0:
            raise InvalidLimitError(f"{self.kind}: window_seconds must be > 0")
        if self.kind is LimitKind.MAX_CORRELATION and self.max_combined_pct < 0:
            raise InvalidLimitError(f"{self.kind}: max_combined_pct must be >= 0")

    @property
    def label(self) -> str:
        """Return the kind, qualified by scope when not global (used in reasons)."""
        if self.scope is LimitScope.GLOBAL:
            return self.kind.value
        return f"{self.kind.value}[{self.scope.value}={self.scope_value}]"

    @property
    def window_seconds(self) -> int:
        """Return the rate-limit window in seconds."""
        raw = self.params.get("window_seconds", DEFAULT_RATE_WINDOW_SECONDS)
        try:
            return int(raw)
        except (TypeError, ValueError) as exc:
            raise InvalidLimitError(f"window_seconds: {raw!r} is not an integer") from exc

    @property
    def max_combined_pct(self) -> Decimal:
        """Return the combined-exposure cap for correlated symbols (fraction of equity)."""
        raw = self.params.get("max_combined_pct", DEFAULT_CORRELATED_EXPOSURE_PCT)
        return _to_decimal(raw, "max_combined_pct")

    def applies_to(self, order: OrderProposal) -> bool:
        """Return True if this limit is enabled and ``order`` falls in its scope."""
        if not self.enabled:
            return False
        scope = self.scope
        if scope is LimitScope.GLOBAL:
            return True
        if scope is LimitScope.SYMBOL:
            return order.symbol == self.scope_value
        if scope is LimitScope.ACCOUNT:
            return order.account == self.scope_value
        return order.strategy == self.scope_value


def default_limits() -> list[LimitSpec]:
    """Return the limits every account gets unless configured otherwise."""
    return [
        LimitSpec(LimitKind.MAX_POSITION_PCT, MAX_POSITION_SIZE_PCT, LimitAction.REDUCE),
        LimitSpec(LimitKind.MAX_DAILY_LOSS_PCT, MAX_DAILY_LOSS_PCT, LimitAction.REDUCE),
        LimitSpec(LimitKind.MAX_DRAWDOWN_PCT, MAX_DRAWDOWN_PCT, LimitAction.HALT),
    ]
