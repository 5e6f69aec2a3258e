"""External trade signals (TradingView alerts) and the ``tradingview_signal`` strategy.

A ``Signal`` reaches every strategy's ``on_signal``; ``tradingview_signal`` turns it into a
target position, so delivering the same signal twice (after a restart) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from trading.engine.constants import DEFAULT_LOT
from trading.engine.strategies import DEFAULT_FRACTION, _TargetStrategy, param_flag, register
from trading.engine.strategy import StrategyContext


@dataclass(frozen=True, slots=True)
class Signal:
    """An external instruction for one symbol: ``action`` buy or sell at ``ts``.

    ``position_size`` is the sender's position after its order ({{strategy.position_size}}):
    its sign says where the sender now stands (None when it did not say).
    """

    symbol: str
    ts: datetime
    action: str
    price: Decimal
    position_size: Decimal | None = None
    source: str = "tradingview"
    signal_id: str = ""
    comment: str = ""


@register("tradingview_signal")
class TradingViewSignalStrategy(_TargetStrategy):
    """Follow TradingView alerts: long after a buy, flat after a sell (short if allowed).

    The sender's ``position_size`` wins when given (positive long, zero flat, negative short);
    otherwise ``buy`` means long and ``sell`` flat, or short with ``allow_short``. Sizing is the
    account's policy (``fraction`` of equity by default), never the sender's contract count.
    """

    default_params = {"fraction": DEFAULT_FRACTION, "lot": DEFAULT_LOT, "allow_short": False}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.params["allow_short"] = param_flag(self.name, self.params, "allow_short")

    def on_signal(self, signal: Signal, ctx: StrategyContext) -> None:
        """Move to the direction the signal asks for, at the latest price (the alert's if none)."""
        if signal.position_size is not None:
            direction = (signal.position_size > 0) - (signal.position_size < 0)
        else:
            direction = 1 if signal.action == "buy" else -1
        if direction < 0 and not self.params["allow_short"]:
            direction = 0
        price = ctx.price(signal.symbol) or signal.price
        self._go(ctx, signal.symbol, direction, price)
