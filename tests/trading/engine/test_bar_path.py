"""The cheap per-bar path gives exactly what the plain one gave.

Deferred marks (``Portfolio.mark_at``) read exactly as marks applied at once; ``PriceHistory``
returns the closes asked for and nothing a later bar can change; every event callback goes
through ``StrategyRunner._dispatch`` and names its event when a strategy fails.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.engine.events import Quote, Trade
from trading.engine.errors import StrategyConfigError
from trading.engine.money import to_decimal
from trading.engine.oms import OrderManager
from trading.engine.orders import Fill, Liquidity, OrderSide
from trading.engine.portfolio import Portfolio
from trading.engine.runner import StrategyRunner
from trading.engine.signal_strategy import StrategyCodeError
from trading.engine.signals import Signal
from trading.engine.strategy import Prediction, PredictionKind, PriceHistory, Strategy
from trading.engine.venue import PaperVenue

D = Decimal
T0 = datetime(2024, 3, 1, 22, tzinfo=UTC)
SYMBOLS = ("BTC-USD", "ETH-USD")


def _fill(i: int, symbol: str, side: OrderSide, qty: str, price: float, ts: datetime) -> Fill:
    return Fill(
        f"o{i}", symbol, side, D(qty), to_decimal(price), D("0.01"), Liquidity.TAKER, ts, f"t{i}"
    )


def _figures(p: Portfolio) -> tuple:
    """Every figure a reader sees, through the public reads."""
    return (
        p.snapshot(),
        p.equity,
        p.peak_equity,
        p.day_start_equity,
        p.daily_pnl,
        p.drawdown,
        p.net_exposure,
        p.gross_exposure,
        p.unrealized_pnl,
        p.view(),
    )


def _replay(steps: list[tuple], lazy: bool) -> list[tuple]:
    """Run ``steps`` on a fresh portfolio; return the figures after each read step."""
    p = Portfolio("a", D(10_000), ts=T0)
    seen = []
    for step in steps:
        kind = step[0]
        if kind == "mark":
            _, symbol, price, ts = step
            if lazy:
                p.mark_at(symbol, price, ts)
            else:
                p.mark(symbol, to_decimal(price), ts)
        elif kind == "fill":
            p.apply_fill(step[1])
        else:  # read
            seen.append(_figures(p))
    seen.append(_figures(p))
    return seen


def _steps(seed: int, n: int = 400) -> list[tuple]:
    rng = random.Random(seed)
    prices = {s: 100.0 * (k + 1) for k, s in enumerate(SYMBOLS)}
    held = {s: D(0) for s in SYMBOLS}
    steps: list[tuple] = []
    ts = T0
    for i in range(n):
        ts += timedelta(minutes=rng.choice((1, 1, 1, 30, 200)))  # crosses UTC days
        symbol = rng.choice(SYMBOLS if rng.random() < 0.3 else SYMBOLS[:1])
        prices[symbol] = round(prices[symbol] * (1 + rng.gauss(0, 0.01)), 2)
        roll = rng.random()
        if roll < 0.08:
            qty = D(rng.choice(("0.5", "1", "2")))
            if held[symbol] > 0 and rng.random() < 0.6:
                side, qty = OrderSide.SELL, held[symbol]  # back to flat: marks then defer
            else:
                side = OrderSide.BUY if rng.random() < 0.7 else OrderSide.SELL
            held[symbol] += qty if side is OrderSide.BUY else -qty
            steps.append(("fill", _fill(i, symbol, side, str(qty), prices[symbol], ts)))
        elif roll < 0.15:
            steps.append(("read",))
        else:
            steps.append(("mark", symbol, prices[symbol], ts))
    return steps


@pytest.mark.parametrize("seed", range(12))
def test_deferred_marks_read_exactly_as_marks_applied_at_once(seed: int) -> None:
    steps = _steps(seed)
    assert any(s[0] == "fill" for s in steps) and any(s[0] == "read" for s in steps)
    assert _replay(steps, lazy=True) == _replay(steps, lazy=False)


@settings(max_examples=60, deadline=None)
@given(
    qty=st.sampled_from(["0.3", "1", "7", "-2", "-0.5"]),
    moves=st.lists(st.floats(-0.05, 0.05), min_size=1, max_size=60),
)
def test_the_peak_is_the_exact_highest_equity_whatever_the_path(qty: str, moves) -> None:
    # One open position (long or short): its marks are the ones deferred below the peak.
    side = OrderSide.BUY if D(qty) > 0 else OrderSide.SELL
    price, ts = 100.0, T0
    lazy, eager = Portfolio("a", D(1000), ts=T0), Portfolio("a", D(1000), ts=T0)
    for p in (lazy, eager):
        p.apply_fill(_fill(0, "BTC-USD", side, str(abs(D(qty))), price, ts))
    exact = [eager.equity]
    for move in moves:
        price = round(price * (1 + move), 2)
        ts += timedelta(minutes=7)
        lazy.mark_at("BTC-USD", price, ts)
        eager.mark("BTC-USD", to_decimal(price), ts)
        exact.append(eager.equity)
        assert lazy.equity_estimate() == pytest.approx(float(eager.equity), rel=1e-12, abs=1e-9)
    assert lazy.peak_equity == eager.peak_equity == max([D(1000), *exact])
    assert lazy.snapshot() == eager.snapshot()


def test_a_flat_positions_last_mark_shows_once_read() -> None:
    p = Portfolio("a", D(1000), ts=T0)
    p.apply_fill(_fill(0, "BTC-USD", OrderSide.BUY, "1", 100.0, T0))
    p.apply_fill(_fill(1, "BTC-USD", OrderSide.SELL, "1", 101.0, T0))
    for k, close in enumerate((102.5, 99.25, 98.75)):
        p.mark_at("BTC-USD", close, T0 + timedelta(minutes=k))
    assert p.positions["BTC-USD"].mark_price == D("100.0")  # not yet converted: nothing read
    assert p.snapshot().positions[0].mark_price == D("98.75")
    assert p.position("BTC-USD").mark_price == D("98.75")


def test_price_history_returns_only_the_closes_asked_for() -> None:
    history = PriceHistory(5)
    assert history.last("BTC-USD", 3) == [] and history.latest("BTC-USD") is None
    for k in range(23):  # past twice the bound: the oldest closes are dropped
        history.append("BTC-USD", float(k))
    assert history.last("BTC-USD", 3) == [20.0, 21.0, 22.0]
    assert history.last("BTC-USD", 50) == [18.0, 19.0, 20.0, 21.0, 22.0]  # never past maxlen
    assert history.last("BTC-USD", 0) == [] and history.latest("BTC-USD") == 22.0
    kept = history.last("BTC-USD", 2)
    kept.append(-1.0)  # a copy: what a strategy keeps is its own
    history.append("BTC-USD", 23.0)
    assert kept == [21.0, 22.0, -1.0] and history.last("BTC-USD", 2) == [22.0, 23.0]
    with pytest.raises(StrategyConfigError):
        PriceHistory(0)


class _Raises(Strategy):
    name = "raises"

    def on_quote(self, quote, ctx):
        raise ValueError("quote")

    def on_trade(self, trade, ctx):
        raise ValueError("trade")

    def on_prediction(self, prediction, ctx):
        raise ValueError("prediction")

    def on_signal(self, signal, ctx):
        raise ValueError("signal")


def _runner() -> StrategyRunner:
    oms = OrderManager(PaperVenue(), portfolios=[Portfolio("a", D(1000), ts=T0)])
    runner = StrategyRunner(oms)
    runner.add(_Raises(), "a")
    runner.start(T0)
    return runner


@pytest.mark.parametrize(
    "callback,event",
    [
        ("on_quote", Quote("BTC-USD", T0, 99.0, 1.0, 101.0, 1.0)),
        ("on_trade", Trade("BTC-USD", T0, 100.0, 1.0)),
        ("on_prediction", Prediction("BTC-USD", T0, PredictionKind.DIRECTION, 0.7)),
        ("on_signal", Signal("BTC-USD", T0, "buy", D(100))),
    ],
)
def test_every_event_is_dispatched_and_a_failure_names_it(callback: str, event) -> None:
    runner = _runner()
    with pytest.raises(StrategyCodeError) as caught:
        getattr(runner, callback)(event)
    assert f"{callback}: BTC-USD at {T0}" in str(caught.value)
    assert runner._slots[0].ctx.now == T0  # the clock moved to the event first


class _Reads(Strategy):
    """Records, on every bar, its clock and the history of both symbols."""

    name = "reads"

    def on_start(self, ctx):
        self.seen = []

    def on_bar(self, bar, ctx):
        self.seen.append((ctx.now, *(tuple(ctx.history(s, 7)) for s in SYMBOLS)))


def test_replayed_bars_keep_the_history_and_clock_appending_one_by_one_gives() -> None:
    """``replay_bars`` appends to the history's lists itself (``closes_of``/``trim``): across
    symbols that alternate or repeat, timeframes that change, trims past twice the bound and
    bars given one call at a time, what a strategy reads equals ``PriceHistory.append``'s."""
    rng = random.Random(11)
    bars = []
    for k in range(60):
        symbol = rng.choice(SYMBOLS)
        timeframe = rng.choice(("1m", "1m", "5m"))
        bars.append(_bar(symbol, timeframe, T0 + timedelta(minutes=k), 100.0 + k))
    oms = OrderManager(PaperVenue(), portfolios=[Portfolio("a", D(1000), ts=T0)])
    runner = StrategyRunner(oms, history_size=4)
    strategy = _Reads()
    runner.add(strategy, "a")
    runner.start(T0)
    assert runner.replay_bars(bars[:40]) == 40
    for bar in bars[40:]:  # runtrader's way: one bar a call
        runner.on_bar(bar)
    reference, expected = PriceHistory(4), []
    for bar in bars:
        reference.append(bar.symbol, bar.close)
        length = timedelta(minutes=5 if bar.timeframe == "5m" else 1)
        expected.append((bar.ts + length, *(tuple(reference.last(s, 7)) for s in SYMBOLS)))
    assert strategy.seen == expected
    assert runner.history.latest(bars[-1].symbol) == bars[-1].close
    for symbol in SYMBOLS:
        kept, _ = runner.history.closes_of(symbol)
        assert len(kept) <= 8  # trimmed: never past twice the bound


def _bar(symbol: str, timeframe: str, ts: datetime, close: float):
    from marketdata.engine.events import Bar

    return Bar(symbol, timeframe, ts, close, close + 1, close - 1, close, 1.0)


class _Heard:
    """An OMS listener keeping the fills."""

    def __init__(self) -> None:
        self.fills: list[Fill] = []

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)

    def on_order(self, order) -> None:
        pass


class _BuysEveryThird(Strategy):
    """Buys one unit on every third bar."""

    name = "thirds"

    def on_start(self, ctx):
        self.bars = 0

    def on_bar(self, bar, ctx):
        self.bars += 1
        if self.bars % 3 == 0:
            ctx.buy(bar.symbol, 1)


def test_replay_bars_runs_after_on_every_bar_or_only_where_the_watched_list_filled() -> None:
    """``after(row, bar)`` sees each bar once fully processed, rows counted from ``start``;
    with ``watch`` only the bars that left it non-empty; given ends are the strategies' clock."""
    bars = [_bar("BTC-USD", "1m", T0 + timedelta(minutes=k), 100.0 + k) for k in range(12)]

    def runner_and_fills() -> tuple[StrategyRunner, list[Fill]]:
        oms = OrderManager(PaperVenue(), portfolios=[Portfolio("a", D(10_000), ts=T0)])
        runner = StrategyRunner(oms, history_size=4)
        runner.add(_BuysEveryThird(), "a")
        heard = _Heard()
        oms.add_listener(heard)
        runner.start(T0)
        return runner, heard.fills

    runner, _ = runner_and_fills()
    seen: list[tuple[int, datetime, datetime]] = []
    ends = [bar.ts + timedelta(seconds=90) for bar in bars]  # not ts + 1m: the given ones rule

    def after(row: int, bar) -> None:
        seen.append((row, bar.ts, runner._slots[0].ctx.now))

    assert runner.replay_bars(bars, iter(ends), after=after, start=5) == 12
    assert seen == [(5 + k, bars[k].ts, ends[k]) for k in range(12)]

    runner, fills = runner_and_fills()
    logged: list[tuple[int, int]] = []

    def record(row: int, bar) -> None:
        logged.append((row, len(fills)))
        fills.clear()

    assert runner.replay_bars(bars, after=record, watch=fills) == 12
    # Bought on bars 2, 5, 8 and 11 (0-based): the paper venue fills at once, in the bar's step.
    assert logged == [(2, 1), (5, 1), (8, 1), (11, 1)]
    assert runner.replay_bars([], after=record, watch=fills) == 0
