"""Backtest stops go through runtrader's ``StopEnforcer`` and close where runtrader's would."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from backtesting.engine.runner import BacktestConfig, run_backtest
from marketdata.engine.events import Trade
from risk.engine.enforcer import STOP_STRATEGY, StopEnforcer
from risk.engine.stops import FixedStop, TrailingStop
from tests.backtesting.engine.helpers import SYM, frame, minute
from trading.engine.oms import OrderManager
from trading.engine.portfolio import Portfolio, PositionSnapshot
from trading.engine.runner import StrategyRunner
from trading.engine.session import TradingSession
from trading.engine.strategy import Strategy
from trading.engine.venue import PaperVenue

D = Decimal
ACCOUNT = "backtest"


class BuyOnceAndHold(Strategy):
    """Buys 1 on the first bar and never sells: only a stop can close it."""

    name = "buy_once_and_hold"
    bought = False

    def on_bar(self, bar, ctx) -> None:
        if not self.bought:
            self.bought = True
            ctx.buy(bar.symbol, 1)


def _falling_then_rising() -> list[tuple[float, float, float, float, float]]:
    closes = [100, 100, 99, 98, 97, 96, 95.5, 94.9, 94, 93, 95, 97, 99, 101, 103]
    rows, prev = [], 100.0
    for c in closes:
        o = prev + 0.1  # opens differ from the previous close: the fill price tells which bar
        rows.append((o, max(o, c) + 0.2, min(o, c) - 0.2, float(c), 100.0))
        prev = float(c)
    return rows


class _Orders:
    def __init__(self) -> None:
        self.orders = []

    def on_order(self, order) -> None:
        if order not in self.orders:
            self.orders.append(order)

    def on_fill(self, fill) -> None:
        pass


def _runtrader_stop_time(rows, entry_price: Decimal, rules) -> tuple:
    """Feed runtrader's session (paper venue, StopEnforcer) each bar's close as a print at the
    bar's end, holding the backtest's entry; return when and why its first stop order came."""
    stops = StopEnforcer(ACCOUNT, rules)
    seen = _Orders()
    oms = OrderManager(PaperVenue(), listeners=[seen, stops])
    portfolio = Portfolio(ACCOUNT, D(100_000), ts=minute(0))
    oms.add_account(portfolio)
    portfolio.restore(cash=D(100_000), positions=[PositionSnapshot(SYM, D(1), entry_price)])
    session = TradingSession(oms, StrategyRunner(oms, bars_to_venue=False), ACCOUNT, stops=stops)
    for i, row in enumerate(rows[2:], start=2):  # the position exists from bar 1's open
        session.on_event(Trade(SYM, minute(i) + timedelta(minutes=1), row[3], 1.0))
        exits = [o for o in seen.orders if o.strategy == STOP_STRATEGY]
        if exits:
            return exits[0].created_ts, exits[0].signal, exits[0].quantity
    return None, None, None


@pytest.mark.parametrize(
    "rules",
    [(FixedStop(percent=D("0.05")),), (TrailingStop(percent=D("0.03")),)],
    ids=["stop_loss", "trailing_stop"],
)
def test_a_backtest_stop_closes_where_runtraders_enforcer_would(rules):
    rows = _falling_then_rising()
    bars = frame(rows)
    held = run_backtest(BuyOnceAndHold(), bars, BacktestConfig(fill_model="next_open"))
    stopped = run_backtest(
        BuyOnceAndHold(), bars, BacktestConfig(fill_model="next_open", stop_rules=rules)
    )
    assert len(held.fills) == 1  # without the stop the position is never closed
    entry = stopped.fills[0]
    exits = [o for o in stopped.orders if o.strategy == STOP_STRATEGY]
    assert len(exits) == 1 and exits[0].reduce_only and exits[0].status.value == "filled"
    when, why, quantity = _runtrader_stop_time(rows, entry.price, rules)
    assert when is not None
    assert exits[0].created_ts == when and exits[0].signal == why
    assert exits[0].quantity == quantity == D(1)
    # It fills like any order: at the open of the bar after the decision.
    exit_fill = stopped.fills[1]
    assert exit_fill.ts == when and exit_fill.price == D(str(rows[int(
        (when - minute(0)) / timedelta(minutes=1))][0]))
    assert stopped.final.positions == [] or all(p.quantity == 0 for p in stopped.final.positions)


def test_stops_act_on_trade_prints_when_a_backtest_has_them():
    rows = [(100.0, 100.5, 99.5, 100.0, 100.0)] * 6
    prints = [Trade(SYM, minute(2) + timedelta(seconds=30), 90.0, 1.0)]  # a dip inside bar 2
    result = run_backtest(
        BuyOnceAndHold(),
        frame(rows),
        BacktestConfig(fill_model="next_open", stop_rules=(FixedStop(percent=D("0.05")),)),
        trades=prints,
    )
    exits = [o for o in result.orders if o.strategy == STOP_STRATEGY]
    assert len(exits) == 1 and exits[0].created_ts == prints[0].ts
