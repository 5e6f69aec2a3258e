"""Keep a halted or reducing account quiet: strategy intents its mode forbids never become orders.

The pre-trade hook would reject them, but a rejected order is still an order: a halted account
whose strategy asks again on every bar fills the order table with rejections. ``ModeGate`` sits
in front of the OMS for strategy intents only (operator and API orders still go through the hook
and are answered), drops what the mode forbids, counts it, and reports the start of each quiet
episode once so the caller can raise one risk event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from trading.engine.hooks import TradingMode
from trading.engine.oms import OrderManager
from trading.engine.orders import OrderIntent, OrderSide

_ACTIVE = TradingMode.ACTIVE
_HALTED = TradingMode.HALTED


def intent_allowed(mode: TradingMode, held: Decimal, intent: OrderIntent) -> bool:
    """Return True if ``mode`` lets ``intent`` through (the rules of ``HaltAwareHook``)."""
    if mode is _ACTIVE:
        return True
    signed = intent.quantity if intent.side is OrderSide.BUY else -intent.quantity
    after = held + signed
    reducing = held != 0 and abs(after) < abs(held) and (after == 0 or (after > 0) == (held > 0))
    if mode is _HALTED:
        return reducing and intent.reduce_only
    return reducing


@dataclass(frozen=True, slots=True)
class QuietEpisode:
    """The first intent dropped since the account entered ``mode``."""

    account: str
    mode: TradingMode
    symbol: str
    strategy: str
    ts: datetime | None


class ModeGate:
    """Callable gate for ``StrategyRunner``: True lets an intent become an order."""

    def __init__(self, oms: OrderManager) -> None:
        self.oms = oms
        self.suppressed = 0  # intents dropped because of the account's mode
        self.after_stop = 0  # intents dropped because the engine is stopping
        self.closed = False  # set at shutdown: nothing trades after the stop signal
        self.now: datetime | None = None
        self._quiet: dict[str, TradingMode] = {}
        self._episodes: list[QuietEpisode] = []

    def __call__(self, intent: OrderIntent) -> bool:
        """Return True if ``intent`` may be submitted."""
        if self.closed:
            self.after_stop += 1
            return False
        account = intent.account
        mode = self.oms.mode(account)
        if mode is _ACTIVE:
            if self._quiet:
                self._quiet.pop(account, None)
            return True
        if intent_allowed(mode, self.oms.position_quantity(account, intent.symbol), intent):
            return True
        self.suppressed += 1
        if self._quiet.get(account) is not mode:
            self._quiet[account] = mode
            self._episodes.append(
                QuietEpisode(account, mode, intent.symbol, intent.strategy, self.now)
            )
        return False

    def drain(self) -> list[QuietEpisode]:
        """Return the quiet episodes that started since the last call."""
        episodes, self._episodes = self._episodes, []
        return episodes
