"""Indicators, built-in strategies, the strategy context and the runner."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
import talib

from marketdata.engine.events import Bar
from tests.trading.engine.helpers import SYM, T0, at
from trading.engine.errors import StrategyConfigError
from trading.engine.indicators import RollingMean, RollingMeanStd, WilderRSI
from trading.engine.oms import OrderManager
from trading.engine.orders import Fill, OrderStatus, OrderType, SequentialIds
from trading.engine.portfolio import Portfolio
from trading.engine.runner import StrategyRunner
from trading.engine.strategies import available_strategies, create_strategy
from trading.engine.strategy import Prediction, PredictionKind, Strategy, StrategyContext
from trading.engine.venue import PaperVenue

D = Decimal


def random_walk(n: int, seed: int = 7, start: float = 30000.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0, 0.01, n)))


def bars_from(closes: list[float] | np.ndarray, volume: float = 1000.0) -> list[Bar]:
    out, prev = [], float(closes[0])
    for i, c in enumerate(closes):
        c = float(c)
        out.append(
            Bar(SYM, "1m", T0 + timedelta(minutes=i), prev, max(prev, c), min(prev, c), c, volume)
        )
        prev = c
    return out


def setup(
    strategy: Strategy, cash: str = "10000"
) -> tuple[StrategyRunner, Portfolio, StrategyContext]:
    oms = OrderManager(PaperVenue(), portfolios=[Portfolio("acct", D(cash), ts=T0)])
    runner = StrategyRunner(oms, id_factory=SequentialIds())
    ctx = runner.add(strategy, "acct")
    runner.start(T0)
    return runner, oms.portfolio("acct"), ctx


def run(strategy: Strategy, closes: list[float], cash: str = "10000") -> tuple[list, Portfolio]:
    runner, pf, _ = setup(strategy, cash)
    fills: list[Fill] = []

    class Tap:
        def on_order(self, order: object) -> None:
            pass

        def on_fill(self, fill: Fill) -> None:
            fills.append(fill)

    runner.oms.add_listener(Tap())
    for b in bars_from(closes):
        runner.on_bar(b)
    return fills, pf


# ----------------------------------------------------------------- indicators


def test_rolling_mean_matches_talib_sma_over_a_resync_boundary() -> None:
    closes = random_walk(5000)
    expected = talib.SMA(closes, timeperiod=30)
    sma = RollingMean(30)
    got = np.array([np.nan if (v := sma.update(c)) is None else v for c in closes])
    assert np.isnan(got[:29]).all()
    np.testing.assert_allclose(got[29:], expected[29:], rtol=1e-10)


def test_rolling_std_matches_talib_bollinger_bands() -> None:
    closes = random_walk(5000, seed=3)
    upper, middle, _ = talib.BBANDS(closes, timeperiod=20, nbdevup=2, nbdevdn=2)
    bands = RollingMeanStd(20)
    got = [bands.update(c) for c in closes]
    assert got[18] is None and got[19] is not None
    mean = np.array([g[0] for g in got[19:]])
    up = np.array([g[0] + 2 * g[1] for g in got[19:]])
    np.testing.assert_allclose(mean, middle[19:], rtol=1e-10)
    np.testing.assert_allclose(up, upper[19:], rtol=1e-8)


def test_wilder_rsi_matches_talib() -> None:
    closes = random_walk(3000, seed=11)
    expected = talib.RSI(closes, timeperiod=14)
    rsi = WilderRSI(14)
    got = np.array([np.nan if (v := rsi.update(c)) is None else v for c in closes])
    assert np.isnan(got[:14]).all() and not np.isnan(got[14])
    np.testing.assert_allclose(got[14:], expected[14:], rtol=1e-9)


# ----------------------------------------------------------------- registry


def test_registry_lists_and_builds_the_builtins() -> None:
    assert {"sma_cross", "rsi_reversion", "bollinger_breakout", "model_signal"} <= set(
        available_strategies()
    )
    s = create_strategy("sma_cross", fast=5, slow=20)
    assert s.name == "sma_cross" and s.params["fast"] == 5 and s.params["fraction"] == 0.1


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("nope", {}),
        ("sma_cross", {"fast": 30, "slow": 10}),
        ("sma_cross", {"speed": 1}),
        ("rsi_reversion", {"lower": 80}),
        ("bollinger_breakout", {"k": 0}),
        ("model_signal", {"threshold": 0.3}),
        ("sma_cross", {"fraction": 0}),
    ],
)
def test_registry_rejects_bad_configs(name: str, params: dict) -> None:
    with pytest.raises(StrategyConfigError):
        create_strategy(name, **params)


# ----------------------------------------------------------------- built-ins


def test_sma_cross_goes_all_in_on_the_cross_and_flat_on_the_reverse() -> None:
    closes = [100.0] * 5 + [100.0 + i for i in range(1, 11)] + [110.0 - 2 * i for i in range(1, 11)]
    fills, pf = run(create_strategy("sma_cross", fast=2, slow=5, fraction=1), closes)
    buys = [f for f in fills if f.side == "buy"]
    sells = [f for f in fills if f.side == "sell"]
    assert len(buys) == 1 and len(sells) == 1
    first = buys[0]
    # Decided on the first up bar's close (101) with all equity, filled at that close.
    assert first.price == D(101) and first.quantity == (D(10000) / D(101)).quantize(
        D("1e-8"), "ROUND_FLOOR"
    )
    assert sells[0].quantity == first.quantity and pf.quantity(SYM) == 0


def test_sma_cross_can_go_short() -> None:
    closes = [100.0] * 5 + [100.0 - i for i in range(1, 8)]
    _, pf = run(
        create_strategy("sma_cross", fast=2, slow=5, allow_short=True, fraction=0.5), closes
    )
    assert pf.quantity(SYM) < 0


def test_signals_use_only_data_up_to_the_bar() -> None:
    """Changing the future must not change any decision taken before it."""
    closes = list(random_walk(400, seed=5))
    altered = closes[:250] + [c * 1.5 for c in closes[250:]]
    full, _ = run(create_strategy("sma_cross", fast=5, slow=20), closes)
    other, _ = run(create_strategy("sma_cross", fast=5, slow=20), altered)
    cutoff = T0 + timedelta(minutes=250)

    def before(fills: list) -> list:
        return [(f.ts, f.side, f.quantity, f.price) for f in fills if f.ts < cutoff]

    assert before(full) and before(full) == before(other)


def test_rsi_reversion_buys_oversold_and_exits_overbought() -> None:
    closes = [100.0 - i for i in range(20)] + [81.0 + 2 * i for i in range(20)]
    fills, pf = run(create_strategy("rsi_reversion"), closes)
    assert [f.side for f in fills] == ["buy", "sell"]
    assert fills[0].ts < fills[1].ts and pf.quantity(SYM) == 0
    assert pf.realized_pnl > 0


def test_bollinger_breakout_enters_above_the_band_and_exits_at_the_middle() -> None:
    closes = [100.0 + (0.5 if i % 2 else -0.5) for i in range(25)] + [105.0, 106.0, 99.0]
    fills, pf = run(create_strategy("bollinger_breakout"), closes)
    assert [f.side for f in fills] == ["buy", "sell"]
    assert fills[0].price == D(105) and fills[1].price == D(99)


def test_model_signal_follows_direction_probabilities() -> None:
    runner, pf, _ = setup(create_strategy("model_signal", threshold=0.6, fraction=0.5))
    runner.on_bar(bars_from([100.0])[0])

    def predict(value: float, t: int, kind: PredictionKind = PredictionKind.DIRECTION) -> None:
        runner.on_prediction(Prediction(SYM, at(60 + t), kind, value, 0.9, "m1"))

    predict(0.55, 1)  # inside the dead band
    assert pf.quantity(SYM) == 0
    predict(0.2, 1, PredictionKind.RETURN)  # not a direction: ignored
    predict(0.7, 2)
    assert pf.quantity(SYM) == D(50)  # half of 10000 at 100
    predict(0.65, 3)  # still long: no new order
    assert pf.quantity(SYM) == D(50)
    predict(0.3, 4)
    assert pf.quantity(SYM) == 0


# ----------------------------------------------------------------- context and runner


class Scripted(Strategy):
    """A strategy that records its callbacks and does what the test tells it to."""

    name = "scripted"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.fills: list[Fill] = []
        self.on_bar_do = None

    def on_start(self, ctx: StrategyContext) -> None:
        self.calls.append("start")

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        self.calls.append(f"bar {bar.close}")
        if self.on_bar_do:
            self.on_bar_do(ctx)

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> None:
        self.fills.append(fill)

    def on_stop(self, ctx: StrategyContext) -> None:
        self.calls.append("stop")


def test_context_reads_and_history() -> None:
    s = Scripted()
    runner, pf, ctx = setup(s)
    for b in bars_from([100.0, 101.0, 102.0]):
        runner.on_bar(b)
    assert ctx.history(SYM, 2) == [101.0, 102.0] and ctx.history(SYM, 10) == [100.0, 101.0, 102.0]
    assert ctx.cash == D(10000) == ctx.equity and ctx.price(SYM) == D(102)
    assert ctx.now == T0 + timedelta(minutes=3)  # end of the last bar
    runner.stop(ctx.now)
    assert s.calls == ["start", "bar 100.0", "bar 101.0", "bar 102.0", "stop"]


def test_target_position_orders_the_difference_and_counts_open_orders() -> None:
    s = Scripted()
    runner, pf, ctx = setup(s)
    s.on_bar_do = lambda c: c.target_position(SYM, 3)
    runner.on_bar(bars_from([100.0])[0])
    assert pf.quantity(SYM) == D(3) and s.fills[0].quantity == D(3)

    def shrink_twice(c: StrategyContext) -> None:
        c.target_position(SYM, 1)
        assert c.target_position(SYM, 1) is None  # the queued intent already counts

    s.on_bar_do = shrink_twice
    runner.on_bar(bars_from([100.0, 100.0])[1])
    assert pf.quantity(SYM) == D(1)
    assert s.fills[-1].side == "sell"
    assert runner.oms.open_orders() == []


def test_strategy_cancels_its_resting_order() -> None:
    s = Scripted()
    runner, pf, ctx = setup(s)
    ids: list[str] = []
    s.on_bar_do = lambda c: ids.append(c.buy(SYM, 1, type=OrderType.LIMIT, price=90))
    runner.on_bar(bars_from([100.0])[0])
    order = runner.oms.get(ids[0])
    assert order is not None and ctx.open_orders() == [order]
    s.on_bar_do = lambda c: c.cancel_all()
    runner.on_bar(bars_from([100.0, 100.0])[1])
    assert order.status is OrderStatus.CANCELLED and ctx.open_orders() == []


def test_duplicate_strategy_ids_are_refused() -> None:
    runner, _, _ = setup(Scripted())
    with pytest.raises(StrategyConfigError):
        runner.add(Scripted(), "acct")
    runner.add(Scripted(), "acct", strategy_id="scripted-2")


def test_fills_reach_only_the_strategy_that_ordered() -> None:
    a, b = Scripted(), Scripted()
    runner, _, _ = setup(a)
    runner.add(b, "acct", strategy_id="b")
    a.on_bar_do = lambda c: c.buy(SYM, 1)
    runner.on_bar(bars_from([100.0])[0])
    assert len(a.fills) == 1 and b.fills == []
