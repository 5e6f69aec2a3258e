"""The OMS's bar step without calls gives exactly what the calls gave (issue #14).

``OrderManager.on_bar`` keeps a bar in the backtest venue's ``idle_bars`` instead of calling its
``on_bar`` while no order is open, and defers a position's mark itself (``Portfolio.defer_below``)
instead of calling ``mark_at``. Each test compares with the long way and would fail if either
shortcut changed a figure, a fill or an order.
"""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest

import backtesting.engine.fills as fills
from backtesting.engine.fills import BacktestVenue, FillConfig, FillModel
from backtesting.engine.runner import BacktestConfig, run_backtest
from marketdata.engine.events import Bar
from tests.backtesting.engine.helpers import SYM, T0, D, walk_frame
from trading.engine.money import to_decimal
from trading.engine.oms import OrderManager
from trading.engine.orders import Fill, Liquidity, OrderSide, OrderType, SequentialIds
from trading.engine.portfolio import Portfolio
from trading.engine.strategy import Strategy

SYMBOLS = (SYM, "ETH-USD")


def _figures(p: Portfolio) -> tuple:
    return (p.snapshot(), p.equity, p.peak_equity, p.day_start_equity, p.drawdown, p.view())


def _steps(seed: int, n: int = 500) -> list[tuple]:
    """Fills (long, short, flat again, two symbols), bars crossing UTC days, reads."""
    rng = random.Random(seed)
    prices = {SYMBOLS[0]: 100.0, SYMBOLS[1]: 20.0}
    held = {s: D(0) for s in SYMBOLS}
    steps: list[tuple] = []
    ts = T0
    for i in range(n):
        ts += timedelta(minutes=rng.choice((1, 1, 1, 45, 300)))
        symbol = rng.choice(SYMBOLS if rng.random() < 0.3 else SYMBOLS[:1])
        prices[symbol] = round(prices[symbol] * (1 + rng.gauss(0, 0.01)), 2)
        roll = rng.random()
        if roll < 0.07:
            if held[symbol] and rng.random() < 0.6:
                qty = abs(held[symbol])
                side = OrderSide.SELL if held[symbol] > 0 else OrderSide.BUY
            else:
                qty = D(rng.choice(("0.5", "1", "3")))
                side = OrderSide.BUY if rng.random() < 0.65 else OrderSide.SELL
            held[symbol] += qty if side is OrderSide.BUY else -qty
            price = to_decimal(prices[symbol])
            fill = Fill(f"o{i}", symbol, side, qty, price, D("0.01"), Liquidity.TAKER, ts, f"t{i}")
            steps.append(("fill", fill))
        elif roll < 0.12:
            steps.append(("read",))
        else:
            p = prices[symbol]
            steps.append(("bar", Bar(symbol, "1m", ts, p, p, p, p, 1.0)))
    return steps


def _replay(steps: list[tuple], through_oms: bool) -> tuple[list[tuple], int]:
    """Return the figures after each read (and at the end), and how many marks the OMS
    deferred without a call."""
    portfolio = Portfolio("a", D(100_000), ts=T0)
    oms = OrderManager(BacktestVenue(FillConfig()), portfolios=[portfolio])
    assert oms.venue.idle_bars is not None
    seen, quick = [], 0
    for step in steps:
        if step[0] == "fill":
            portfolio.apply_fill(step[1])
        elif step[0] == "read":
            seen.append(_figures(portfolio))
        else:
            bar = step[1]
            if through_oms:
                before = dict(portfolio.deferred_marks)
                below, until = portfolio.defer_below.get(bar.symbol), portfolio.defer_until
                oms.on_bar(bar)
                if below is not None and bar.close < below and bar.ts < until:
                    quick += 1
                    assert portfolio.deferred_marks == {**before, bar.symbol: bar.close}
            elif bar.symbol in portfolio.positions:
                portfolio.mark(bar.symbol, to_decimal(bar.close), bar.ts)
    seen.append(_figures(portfolio))
    return seen, quick


@pytest.mark.parametrize("seed", range(10))
def test_marks_the_oms_defers_itself_read_exactly_as_marks_applied_at_once(seed: int) -> None:
    steps = _steps(seed)
    lazy, quick = _replay(steps, through_oms=True)
    exact, _ = _replay(steps, through_oms=False)
    assert lazy == exact
    assert quick > 100  # the shortcut was taken (flat and long positions), not only mark_at


def test_defer_below_keeps_a_long_positions_marks_under_the_peak() -> None:
    p = Portfolio("a", D(1000), ts=T0)
    p.apply_fill(Fill("o", SYM, OrderSide.BUY, D(2), D(100), D(0), Liquidity.TAKER, T0, "t"))
    below = p.defer_below[SYM]
    # 2 × below stays under the peak less its margin: such a mark cannot raise the peak.
    assert 2 * below < p._headroom and below == pytest.approx(50.0 + p._headroom / 2 - 50.0)
    p.apply_fill(Fill("o", SYM, OrderSide.SELL, D(4), D(100), D(0), Liquidity.TAKER, T0, "u"))
    assert SYM not in p.defer_below  # short: ``mark_at`` decides
    p.apply_fill(Fill("o", SYM, OrderSide.BUY, D(2), D(100), D(0), Liquidity.TAKER, T0, "v"))
    assert p.defer_below[SYM] == float("inf")  # flat


class _Trader(Strategy):
    """Seeded market, limit and bracket orders, and cancels: bars with and without orders."""

    def on_start(self, ctx) -> None:
        self.rng = random.Random(5)

    def on_bar(self, bar, ctx) -> None:
        rng, held = self.rng, ctx.position(bar.symbol)
        roll = rng.random()
        if roll < 0.04:
            ctx.buy(bar.symbol, D("0.5"))
        elif roll < 0.08 and held > 0:
            ctx.sell(bar.symbol, held)
        elif roll < 0.10:
            price = to_decimal(round(bar.close * 0.995, 2))
            ctx.buy(bar.symbol, D("0.25"), type=OrderType.LIMIT, price=price)
        elif roll < 0.11:
            stop = to_decimal(round(bar.close * 0.99, 2))
            ctx.buy(bar.symbol, D("0.25"), stop_loss=stop)
        elif roll < 0.13:
            ctx.cancel_all(bar.symbol)


def _run(monkeypatch, shortcut: bool, model: FillModel):
    if not shortcut:
        init = BacktestVenue.__init__

        def every_bar(self, *args, **kwargs) -> None:
            init(self, *args, **kwargs)
            self.idle_bars = None  # the venue sees every bar, as before

        monkeypatch.setattr(fills.BacktestVenue, "__init__", every_bar)
    config = BacktestConfig(
        initial_cash=Decimal(10_000), taker_fee_bps=Decimal(10), fill_model=model
    )
    result = run_backtest(_Trader(), walk_frame(3000, seed=11), config)
    monkeypatch.undo()
    return result


@pytest.mark.parametrize("model", [FillModel.NEXT_OPEN, FillModel.CLOSE])
def test_a_backtest_with_the_idle_bar_shortcut_is_the_backtest_without_it(
    monkeypatch, model: FillModel
) -> None:
    quick, slow = _run(monkeypatch, True, model), _run(monkeypatch, False, model)
    assert len(quick.fills) > 100 and len(quick.orders) > 200
    assert quick.fills == slow.fills
    orders = [(o.client_order_id, o.status, o.filled_quantity, o.updated_ts) for o in quick.orders]
    assert orders == [
        (o.client_order_id, o.status, o.filled_quantity, o.updated_ts) for o in slow.orders
    ]
    assert quick.final == slow.final
    assert quick.equity.equals(slow.equity)


def test_the_venue_offers_idle_bars_only_where_its_bar_step_would_only_keep_the_bar() -> None:
    assert BacktestVenue(FillConfig()).idle_bars is not None
    assert BacktestVenue(FillConfig(model=FillModel.CLOSE)).idle_bars is None
    assert BacktestVenue(FillConfig(model=FillModel.BOOK)).idle_bars is None
    assert BacktestVenue(FillConfig(volume_cap=0.5)).idle_bars is None
    oms = OrderManager(BacktestVenue(FillConfig()), id_factory=SequentialIds("x"))
    oms.on_bar(Bar(SYM, "1m", T0, 100.0, 101.0, 99.0, 100.5, 1.0))
    assert oms.venue.idle_bars[SYM].close == 100.5 and oms.venue.reference_price(SYM) == D("100.5")
