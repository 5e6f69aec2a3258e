"""Protective exits the engine enforces even when a strategy forgets them.

Rules are immutable configuration (``FixedStop``, ``TrailingStop``, ``VolatilityStop``,
``TimeExit``); ``StopManager`` keeps per-position state (entry, best price since entry, ATR) and,
on every price or bar, returns ``ExitIntent``s: data saying "close this quantity of this symbol
for this reason". It never places orders itself.

Bars are evaluated without look-ahead: a bar's low (high for shorts) is tested against the stop
as it stood *before* the bar, and only then does the bar's high (low) move a trailing stop, since
within one bar we cannot know whether the high came before the low.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from marketdata.engine.events import Bar
from risk.engine.errors import StopConfigError
from risk.engine.sizing import Number, to_decimal
from trading.engine.hooks import PositionView

_ZERO = Decimal(0)
_ONE = Decimal(1)


class StopReason(StrEnum):
    """Why an exit was requested."""

    FIXED = "fixed_stop"
    TRAILING = "trailing_stop"
    VOLATILITY = "volatility_stop"
    TIME = "time_exit"


@dataclass(slots=True)
class TrackedPosition:
    """Per-position stop state."""

    symbol: str
    quantity: Decimal  # signed
    entry_price: Decimal
    entry_ts: datetime
    rules: tuple[StopRule, ...]
    best_price: Decimal  # highest since entry for longs, lowest for shorts
    atr: Decimal | None = None
    exiting: bool = False  # an exit intent is out; do not repeat it on every tick

    @property
    def long(self) -> bool:
        """Return True for a long position."""
        return self.quantity > 0

    def away(self, anchor: Decimal, distance: Decimal) -> Decimal:
        """Return the price ``distance`` on the losing side of ``anchor``."""
        return anchor - distance if self.long else anchor + distance

    def scaled(self, anchor: Decimal, fraction: Decimal) -> Decimal:
        """Return the price ``fraction`` of ``anchor`` on the losing side of it."""
        return anchor * (_ONE - fraction) if self.long else anchor * (_ONE + fraction)


class StopRule(Protocol):
    """A stop rule: a price level, a time limit, or both (None when it does not apply)."""

    reason: StopReason

    def level(self, pos: TrackedPosition) -> Decimal | None:
        """Return the stop price for ``pos``, or None if this rule has no price level."""
        ...

    def expired(self, pos: TrackedPosition, ts: datetime) -> bool:
        """Return True if ``pos`` must be closed at ``ts`` regardless of price."""
        ...


def _fraction_ok(value: Decimal | None) -> bool:
    """Return True if ``value`` is absent or a fraction in (0, 1)."""
    return value is None or _ZERO < value < _ONE


@dataclass(frozen=True, slots=True)
class FixedStop:
    """Exit at an absolute ``price``, or ``percent`` below (long) / above (short) entry."""

    price: Decimal | None = None
    percent: Decimal | None = None
    reason: StopReason = field(default=StopReason.FIXED, init=False)

    def __post_init__(self) -> None:
        """Require exactly one of price and percent, each in range."""
        if (self.price is None) == (self.percent is None):
            raise StopConfigError("FixedStop needs exactly one of price or percent")
        if self.price is not None and self.price <= 0:
            raise StopConfigError(f"stop price must be > 0, got {self.price}")
        if not _fraction_ok(self.percent):
            raise StopConfigError(f"stop percent must be in (0, 1), got {self.percent}")

    def level(self, pos: TrackedPosition) -> Decimal | None:
        """Return the fixed stop price."""
        if self.price is not None:
            return self.price
        return pos.scaled(pos.entry_price, self.percent or _ZERO)

    def expired(self, pos: TrackedPosition, ts: datetime) -> bool:
        """Never expire: this is a price stop."""
        return False


@dataclass(frozen=True, slots=True)
class TrailingStop:
    """Trail the best price since entry by an ``amount`` (price units) or a ``percent``."""

    amount: Decimal | None = None
    percent: Decimal | None = None
    reason: StopReason = field(default=StopReason.TRAILING, init=False)

    def __post_init__(self) -> None:
        """Require exactly one of amount and percent, each in range."""
        if (self.amount is None) == (self.percent is None):
            raise StopConfigError("TrailingStop needs exactly one of amount or percent")
        if self.amount is not None and self.amount <= 0:
            raise StopConfigError(f"trailing amount must be > 0, got {self.amount}")
        if not _fraction_ok(self.percent):
            raise StopConfigError(f"trailing percent must be in (0, 1), got {self.percent}")

    def level(self, pos: TrackedPosition) -> Decimal | None:
        """Return the best price minus (long) / plus (short) the trail."""
        if self.amount is not None:
            return pos.away(pos.best_price, self.amount)
        return pos.scaled(pos.best_price, self.percent or _ZERO)

    def expired(self, pos: TrackedPosition, ts: datetime) -> bool:
        """Never expire: this is a price stop."""
        return False


@dataclass(frozen=True, slots=True)
class VolatilityStop:
    """Stop ``multiple`` × ATR from entry (or from the best price when ``trailing``).

    ``atr`` fixes the ATR in the rule; when None, the position's ATR (``StopManager.update_atr``)
    is used, and the rule is inactive until one is known.
    """

    multiple: Decimal
    atr: Decimal | None = None
    trailing: bool = False
    reason: StopReason = field(default=StopReason.VOLATILITY, init=False)

    def __post_init__(self) -> None:
        """Require a positive multiple and ATR."""
        if self.multiple <= 0:
            raise StopConfigError(f"ATR multiple must be > 0, got {self.multiple}")
        if self.atr is not None and self.atr <= 0:
            raise StopConfigError(f"ATR must be > 0, got {self.atr}")

    def level(self, pos: TrackedPosition) -> Decimal | None:
        """Return the anchor minus (long) / plus (short) multiple × ATR."""
        atr = self.atr if self.atr is not None else pos.atr
        if atr is None:
            return None
        anchor = pos.best_price if self.trailing else pos.entry_price
        return pos.away(anchor, self.multiple * atr)

    def expired(self, pos: TrackedPosition, ts: datetime) -> bool:
        """Never expire: this is a price stop."""
        return False


@dataclass(frozen=True, slots=True)
class TimeExit:
    """Close a position once it has been held for ``max_holding``."""

    max_holding: timedelta
    reason: StopReason = field(default=StopReason.TIME, init=False)

    def __post_init__(self) -> None:
        """Require a positive holding period."""
        if self.max_holding <= timedelta(0):
            raise StopConfigError(f"max holding must be > 0, got {self.max_holding}")

    def level(self, pos: TrackedPosition) -> Decimal | None:
        """Return None: a time exit has no price level."""
        return None

    def expired(self, pos: TrackedPosition, ts: datetime) -> bool:
        """Return True once ``max_holding`` has elapsed since entry."""
        return ts - pos.entry_ts >= self.max_holding


@dataclass(frozen=True, slots=True)
class ExitIntent:
    """Close ``quantity`` of ``symbol`` with a ``side`` order because of ``reason``."""

    account: str
    symbol: str
    side: str  # "sell" closes a long, "buy" closes a short
    quantity: Decimal  # positive
    reason: StopReason
    trigger_price: Decimal | None  # the stop level crossed; None for time exits
    ts: datetime


class StopManager:
    """Track stops per position of one account and emit exit intents when they are hit."""

    def __init__(self, account: str = "", default_rules: Iterable[StopRule] = ()) -> None:
        """Create a manager; ``default_rules`` protect positions registered without rules."""
        self.account = account
        self.default_rules = tuple(default_rules)
        self._positions: dict[str, TrackedPosition] = {}

    @property
    def positions(self) -> Mapping[str, TrackedPosition]:
        """Return the tracked positions by symbol."""
        return self._positions

    def track(
        self,
        symbol: str,
        quantity: Decimal,
        entry_price: Decimal,
        entry_ts: datetime,
        rules: Iterable[StopRule] | None = None,
        atr: Decimal | None = None,
    ) -> TrackedPosition:
        """Start (or restart) tracking a position; ``rules`` default to ``default_rules``."""
        if quantity == 0:
            raise StopConfigError(f"{symbol}: cannot track a flat position")
        if entry_price <= 0:
            raise StopConfigError(f"{symbol}: entry price must be > 0, got {entry_price}")
        chosen = self.default_rules if rules is None else tuple(rules)
        pos = TrackedPosition(symbol, quantity, entry_price, entry_ts, chosen, entry_price, atr)
        self._positions[symbol] = pos
        return pos

    def untrack(self, symbol: str) -> None:
        """Stop tracking ``symbol`` (position closed)."""
        self._positions.pop(symbol, None)

    def update_atr(self, symbol: str, atr: Number) -> None:
        """Set the ATR used by volatility stops without a fixed ATR."""
        value = to_decimal(atr, "atr")
        if value <= 0:
            raise StopConfigError(f"{symbol}: ATR must be > 0, got {value}")
        self._get(symbol).atr = value

    def rearm(self, symbol: str) -> None:
        """Allow new exit intents again (the previous exit order was rejected or cancelled)."""
        self._get(symbol).exiting = False

    def sync(self, positions: Mapping[str, PositionView], ts: datetime) -> None:
        """Mirror the portfolio: track new positions, follow size changes, drop closed ones."""
        for symbol in [s for s in self._positions if not _held(positions.get(s))]:
            del self._positions[symbol]
        for symbol, view in positions.items():
            if view.quantity == 0:
                continue
            pos = self._positions.get(symbol)
            if pos is None or (pos.quantity > 0) != (view.quantity > 0):
                rules = None if pos is None else pos.rules
                atr = None if pos is None else pos.atr
                self.track(symbol, view.quantity, view.avg_price, ts, rules, atr)
            else:
                pos.quantity = view.quantity
                pos.entry_price = view.avg_price

    def stop_level(self, symbol: str) -> Decimal | None:
        """Return the most protective price level over the position's rules."""
        return _tightest(self._get(symbol))[0]

    def on_price(self, symbol: str, price: Number, ts: datetime) -> list[ExitIntent]:
        """Evaluate stops of ``symbol`` at a trade/mark ``price``."""
        value = to_decimal(price, "price")
        return self._evaluate(symbol, value, value, ts)

    def on_bar(self, bar: Bar) -> list[ExitIntent]:
        """Evaluate stops of ``bar.symbol`` over the bar's range; ``ts`` is the bar's start."""
        low = to_decimal(bar.low, "low")
        high = to_decimal(bar.high, "high")
        return self._evaluate(bar.symbol, low, high, bar.ts)

    def _get(self, symbol: str) -> TrackedPosition:
        """Return the tracked position or raise."""
        try:
            return self._positions[symbol]
        except KeyError:
            raise StopConfigError(f"{symbol}: no tracked position") from None

    def _evaluate(self, symbol: str, low: Decimal, high: Decimal, ts: datetime) -> list[ExitIntent]:
        """Test the stop as it stood before this range, then let the range move the trail."""
        pos = self._positions.get(symbol)
        if pos is None or pos.exiting:
            return []
        level, reason = _tightest(pos)
        hit = level is not None and (low <= level if pos.long else high >= level)
        if not hit:
            level = None
            reason = next((r.reason for r in pos.rules if r.expired(pos, ts)), None)
        pos.best_price = max(pos.best_price, high) if pos.long else min(pos.best_price, low)
        if reason is None:
            return []
        pos.exiting = True
        side = "sell" if pos.long else "buy"
        return [ExitIntent(self.account, symbol, side, abs(pos.quantity), reason, level, ts)]


def _held(view: PositionView | None) -> bool:
    """Return True if ``view`` is an open position."""
    return view is not None and view.quantity != 0


def _tightest(pos: TrackedPosition) -> tuple[Decimal | None, StopReason | None]:
    """Return the stop level closest to the market (highest for longs) and its reason."""
    best: Decimal | None = None
    reason: StopReason | None = None
    for rule in pos.rules:
        level = rule.level(pos)
        if level is None:
            continue
        if best is None or (level > best if pos.long else level < best):
            best, reason = level, rule.reason
    return best, reason
