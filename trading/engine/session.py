"""``TradingSession``: how market events drive the engine, shared by live trading and replay.

For each validated market event (trades, quotes, books, bars from the aggregator) the session
feeds the OMS and strategies through the ``StrategyRunner``, lets protective stops act on trade
prices, keeps the risk checker's prices and account checks current on bars, and applies the
trading-mode changes risk asks for. ``runtrader`` wraps it with I/O (feeds, persistence,
broadcasts); the backtester's replay drives the very same object from recorded data, so both
make the same decisions from the same events.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from marketdata.engine.events import Bar, BookSnapshot, Quote, Timeframe, Trade
from trading.engine.oms import OrderManager
from trading.engine.orders import OrderIntent
from trading.engine.runner import StrategyRunner

logger = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # only before any event: nothing can be open yet


class StopHook(Protocol):
    """Protective stops (``risk.engine.enforcer.StopEnforcer``)."""

    def on_trade(self, oms: OrderManager, trade: Trade) -> list[OrderIntent]:
        """Return exit orders this print triggers."""
        ...

    def on_bar(self, bar: Bar) -> None:
        """Update volatility state from a bar."""
        ...


class TradingSession:
    """Route events to runner, stops and risk for one account."""

    def __init__(
        self,
        oms: OrderManager,
        runner: StrategyRunner,
        account: str,
        *,
        timeframe: str = "1m",
        risk: Any = None,
        stops: StopHook | None = None,
    ) -> None:
        self.oms = oms
        self.runner = runner
        self.account = account
        self.timeframe = timeframe
        self.risk = risk
        self.stops = stops
        self.now: datetime | None = None
        self.bars = 0
        self.predictors: dict[str, Any] = {}  # symbol -> models_ml Predictor (duck-typed)
        self.predictions: list[Any] = []  # produced since the runtime last drained them
        self.prediction_errors = 0

    def on_event(self, event: object) -> Bar | None:
        """Process one event; return it if it was a bar the strategies traded on."""
        if isinstance(event, Trade):
            self.now = event.ts
            self.runner.on_trade(event)
            if self.stops is not None:
                for intent in self.stops.on_trade(self.oms, event):
                    self.oms.submit(intent, event.ts)
            if self.predictors:
                self._observe(event)
        elif isinstance(event, Quote):
            self.runner.on_quote(event)
            if self.predictors:
                self._observe(event)
        elif isinstance(event, BookSnapshot):
            self.runner.on_book(event)
        elif isinstance(event, Bar):
            return self._on_bar(event)
        return None

    def _observe(self, event: Trade | Quote) -> None:
        """Show a trade or quote to the symbol's model when it reads them (book/flow inputs)."""
        observe = getattr(self.predictors.get(event.symbol), "observe", None)
        if observe is not None:
            observe(event)

    def _on_bar(self, bar: Bar) -> Bar | None:
        if self.stops is not None:
            self.stops.on_bar(bar)
        if bar.timeframe == "1m" and self.risk is not None:
            self.risk.update_price(bar.symbol, bar.close)
        if bar.timeframe != self.timeframe:
            return None
        self.bars += 1
        self.runner.on_bar(bar)
        predictor = self.predictors.get(bar.symbol)
        if predictor is not None:
            self._predict(predictor, bar)
        if self.risk is not None:
            view = self.oms.portfolio(self.account).view(
                self.oms.mode(self.account), len(self.oms.open_orders(self.account))
            )
            self.risk.check_account(view, bar.ts)
        return bar

    def _predict(self, predictor: Any, bar: Bar) -> None:
        """Run the model on a closed bar and hand its direction call to the strategies."""
        try:
            output = predictor.predict(bar)
        except Exception:  # a broken model must never stop trading; it is logged and counted
            self.prediction_errors += 1
            logger.exception("prediction failed for %s at %s", bar.symbol, bar.ts)
            return
        if output is None:
            return
        self.predictions.append(output)
        direction, _ = output.to_predictions()
        decided_at = bar.ts + timedelta(seconds=Timeframe(bar.timeframe).seconds)
        self.runner.on_prediction(replace(direction, ts=decided_at))

    def drain_risk(self) -> tuple[list, list]:
        """Apply the mode changes risk asked for; return (risk events, mode changes)."""
        if self.risk is None:
            return [], []
        changes = self.risk.drain_mode_changes()
        events = self.risk.drain_events()
        for change in changes:
            self.oms.set_mode(change.account, change.mode, self.now or change.ts or _EPOCH)
        return events, changes
