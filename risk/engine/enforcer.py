"""Protective stops the trading engine enforces even when a strategy forgets them (live and replay).

``StopEnforcer`` wraps ``risk.engine.stops.StopManager``: it mirrors the account's positions after
fills, feeds it trade prices and 1m-bar ATR, and turns its exit intents into reduce-only market
orders tagged ``risk-stop``. An exit that is rejected or cancelled re-arms the stop.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from marketdata.engine.events import Bar, Trade
from risk.engine.stops import (
    FixedStop,
    StopManager,
    StopRule,
    TimeExit,
    TrailingStop,
    VolatilityStop,
)
from trading.engine.oms import OrderManager
from trading.engine.orders import Fill, Order, OrderIntent, OrderSide

STOP_STRATEGY = "risk-stop"


def stop_rules(
    *,
    stop_loss: Decimal | None = None,
    trailing: Decimal | None = None,
    atr_multiple: Decimal | None = None,
    max_hold: float | None = None,
) -> list[StopRule]:
    """Build the default stop rules from ``runtrader`` options (fractions, ATR multiple, s)."""
    rules: list[StopRule] = []
    if stop_loss:
        rules.append(FixedStop(percent=Decimal(stop_loss)))
    if trailing:
        rules.append(TrailingStop(percent=Decimal(trailing)))
    if atr_multiple:
        rules.append(VolatilityStop(multiple=Decimal(atr_multiple), trailing=True))
    if max_hold:
        rules.append(TimeExit(max_holding=timedelta(seconds=max_hold)))
    return rules


class WilderATR:
    """Average true range with Wilder smoothing, updated per bar."""

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._prev_close: float | None = None
        self._seed: list[float] = []
        self.value: float | None = None

    def update(self, bar: Bar) -> float | None:
        """Add a bar; return the ATR once ``period`` bars were seen."""
        prev = self._prev_close
        tr = (
            bar.high - bar.low
            if prev is None
            else max(bar.high - bar.low, abs(bar.high - prev), abs(bar.low - prev))
        )
        self._prev_close = bar.close
        if self.value is None:
            self._seed.append(tr)
            if len(self._seed) == self.period:
                self.value = sum(self._seed) / self.period
        else:
            self.value = (self.value * (self.period - 1) + tr) / self.period
        return self.value


class StopEnforcer:
    """Listener + hooks that keep every position of one account protected."""

    def __init__(
        self,
        account: str,
        rules: Iterable[StopRule],
        atr_period: int = 14,
        atr_timeframe: str = "1m",
    ) -> None:
        self.account = account
        self.manager = StopManager(account, rules)
        self.atr: dict[str, WilderATR] = {}
        self.atr_period = atr_period
        self.atr_timeframe = atr_timeframe  # bars that feed the ATR (a backtest: its own)
        self._dirty = True
        self.exits = 0

    @property
    def active(self) -> bool:
        """Return True when any default rule is configured."""
        return bool(self.manager.default_rules)

    # OMS listener ------------------------------------------------------------------------
    def on_fill(self, fill: Fill) -> None:
        """Positions changed: re-sync before the next price."""
        self._dirty = True

    def on_order(self, order: Order) -> None:
        """Re-arm a stop whose exit order died without filling."""
        if order.strategy == STOP_STRATEGY and order.status.value in {
            "rejected",
            "cancelled",
            "expired",
        }:
            if order.symbol in self.manager.positions:
                self.manager.rearm(order.symbol)

    # market data -------------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        """Update ATR from bars of ``atr_timeframe`` (1m live)."""
        if bar.timeframe != self.atr_timeframe:
            return
        value = self.atr.setdefault(bar.symbol, WilderATR(self.atr_period)).update(bar)
        if value and bar.symbol in self.manager.positions:
            self.manager.update_atr(bar.symbol, value)

    def on_trade(self, oms: OrderManager, trade: Trade) -> list[OrderIntent]:
        """Return the exit orders this print triggers."""
        if not self.active:
            return []
        if self._dirty:
            self._sync(oms, trade.ts)
        if trade.symbol not in self.manager.positions:
            return []
        intents = []
        for exit_ in self.manager.on_price(trade.symbol, trade.price, trade.ts):
            self.exits += 1
            intents.append(
                OrderIntent(
                    account=self.account,
                    symbol=exit_.symbol,
                    side=OrderSide(exit_.side),
                    quantity=exit_.quantity,
                    reduce_only=True,
                    strategy=STOP_STRATEGY,
                    signal=exit_.reason.value,
                )
            )
        return intents

    def _sync(self, oms: OrderManager, ts: datetime) -> None:
        # The portfolio's view: its marks applied (``Portfolio.mark_at`` may defer them).
        views = dict(oms.portfolio(self.account).view().positions)
        self.manager.sync(views, ts)
        for symbol, atr in self.atr.items():
            if atr.value and symbol in self.manager.positions:
                self.manager.update_atr(symbol, atr.value)
        self._dirty = False
