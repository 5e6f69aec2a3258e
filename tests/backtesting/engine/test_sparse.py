"""The sparse replay gives what replaying every bar gives, and applies only where it may."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from backtesting.engine.fills import FixedBps
from backtesting.engine.result import round_trips
from backtesting.engine.runner import BacktestConfig, BacktestRunner, prepare_bars
from backtesting.engine.sparse import NEVER, build_plan
from marketdata.engine.events import Bar
from risk.engine.checks import RiskChecker
from tests.backtesting.engine.helpers import D, sim_frame, walk_frame
from trading.engine.portfolio import Position
from trading.engine.series import IndicatorCache
from trading.engine.strategies import SmaCross, create_strategy
from trading.engine.strategy import PriceHistory, StrategyContext

STRATEGIES = [
    ("sma_cross", {"fast": 5, "slow": 20}),
    ("sma_cross", {"fast": 3, "slow": 11, "allow_short": True}),
    ("rsi_reversion", {"period": 7, "lower": 35, "upper": 65}),
    ("bollinger_breakout", {"period": 15, "k": 1.2}),
    ("bollinger_breakout", {"period": 10, "k": 1.0, "allow_short": True}),
]
CONFIGS = [
    BacktestConfig(taker_fee_bps=D(10)),
    BacktestConfig(fill_model="close", taker_fee_bps=D(5), slippage=FixedBps(3)),
    BacktestConfig(taker_fee_bps=D(10), volume_cap=0.02),  # partial fills leave orders open
]


def days_frame(n: int, seed: int) -> pd.DataFrame:
    """Return ``n`` 5-minute bars (several UTC days) of a random walk."""
    bars = walk_frame(n, seed=seed)
    bars["ts"] = bars["ts"].iloc[0] + pd.to_timedelta(np.arange(n) * 5, unit="min")
    return bars


def run(bars, strategies, config, sparse: bool, symbols=None):
    runner = BacktestRunner(config, sparse=sparse)
    for i, (name, params) in enumerate(strategies):
        runner.add(
            create_strategy(name, **params),
            symbols=symbols[i] if symbols else None,
            strategy_id=f"s{i}",
        )
    return runner.run(bars)


def assert_same(sparse, full) -> None:
    assert [asdict(f) for f in sparse.fills] == [asdict(f) for f in full.fills]
    assert [(o.client_order_id, o.status, o.filled_quantity) for o in sparse.orders] == [
        (o.client_order_id, o.status, o.filled_quantity) for o in full.orders
    ]
    assert sparse.trades == full.trades
    assert sparse.final == full.final  # cash, equity, P&L, peak and day start, positions: exact
    np.testing.assert_allclose(sparse.equity.to_numpy(), full.equity.to_numpy(), rtol=1e-12)
    assert (sparse.equity.index == full.equity.index).all()
    # Exposure comes from the replay's state log under next-open fills: the same bars, exactly.
    assert sparse.metrics["exposure_time"] == full.metrics["exposure_time"]
    for key, value in full.metrics.items():
        assert sparse.metrics[key] == pytest.approx(value, rel=1e-6, abs=1e-9, nan_ok=True), key


@pytest.mark.parametrize("config", CONFIGS, ids=["next_open", "close+slippage", "volume_cap"])
@pytest.mark.parametrize("name,params", STRATEGIES)
def test_sparse_equals_full_replay(name, params, config) -> None:
    bars = days_frame(2500, seed=5)
    sparse = run(bars, [(name, params)], config, sparse=True)
    full = run(bars, [(name, params)], config, sparse=False)
    assert len(full.fills) > 10
    assert_same(sparse, full)


def test_sparse_equals_full_on_a_shared_multi_symbol_account() -> None:
    bars = sim_frame(3000, ("BTC-USD", "ETH-USD", "SOL-USD"))
    strategies = [
        ("sma_cross", {"fast": 5, "slow": 20, "fraction": D("0.3")}),
        ("bollinger_breakout", {"period": 12, "k": 1.0, "fraction": D("0.25")}),
        ("rsi_reversion", {"period": 9, "fraction": D("0.2")}),
    ]
    symbols = [("BTC-USD", "ETH-USD"), ("ETH-USD", "SOL-USD"), None]
    for config in CONFIGS[:2]:
        sparse = run(bars, strategies, config, True, symbols)
        full = run(bars, strategies, config, False, symbols)
        assert {f.symbol for f in full.fills} == {"BTC-USD", "ETH-USD", "SOL-USD"}
        assert_same(sparse, full)


def test_sparse_equals_full_when_the_account_is_too_poor_to_trade() -> None:
    # 40 units of cash at prices ~100 and a lot of 1: entries size to zero and are retried on
    # every bar until the price falls low enough, and after losses the account cannot re-enter.
    bars = days_frame(3000, seed=8)
    lot = {"lot": D(1), "fraction": D(1)}
    for params in ({"fast": 3, "slow": 9}, {"fast": 2, "slow": 5, "allow_short": True}):
        config = BacktestConfig(initial_cash=D(101), taker_fee_bps=D(30))
        sparse = run(bars, [("sma_cross", {**params, **lot})], config, True)
        full = run(bars, [("sma_cross", {**params, **lot})], config, False)
        assert full.fills
        assert_same(sparse, full)


def test_decision_tables_describe_on_bar() -> None:
    """Each built-in's table says what on_bar does, bar by bar, for every side held."""
    bars = walk_frame(600, seed=2)
    close = bars["close"].to_numpy()
    for name, params in STRATEGIES:
        table = create_strategy(name, **params).decision_table(IndicatorCache(close))
        assert table.shape == (3, close.size)
        for held in (-1, 0, 1):
            strategy = create_strategy(name, **params)
            reader = _Holding(held)
            ctx = StrategyContext(
                reader=reader, account="a", strategy_id="s", history=PriceHistory()
            )
            got = []
            for i, c in enumerate(close.tolist()):
                strategy.on_bar(Bar("BTC-USD", "1m", bars["ts"][i], c, c, c, c, 1.0), ctx)
                intents, _ = ctx.drain()
                got.append(reader.direction_of(intents))
            want = [None if np.isnan(v) or v == held else int(v) for v in table[held + 1]]
            assert got == want, (name, held)


class _Holding:
    """An account reader holding ``held`` units of everything, with plenty of cash."""

    equity = cash = D(10**9)

    def __init__(self, held: int) -> None:
        self.held = Decimal(held)
        self.positions = self  # ``positions.get(symbol)``: a position of ``held`` units

    def portfolio(self, account: str) -> _Holding:
        return self

    def get(self, symbol: str) -> Position:
        return Position(symbol, self.held)

    def quantity(self, symbol: str) -> Decimal:
        return self.held

    def open_orders(self, account=None, symbol=None) -> list:
        return []

    def reference_price(self, symbol: str) -> None:
        return None

    def direction_of(self, intents) -> int | None:
        if not intents:
            return None
        (intent,) = intents
        after = self.held + (intent.quantity if intent.side == "buy" else -intent.quantity)
        return (after > 0) - (after < 0)


def test_sparse_replay_applies_only_when_nothing_needs_every_bar() -> None:
    data = prepare_bars(walk_frame(300))
    runner = BacktestRunner().add(create_strategy("sma_cross", fast=3, slow=9))
    assert runner._sparse_plan(data) is not None
    assert BacktestRunner(sparse=False).add(SmaCross())._sparse_plan(data) is None
    hooked = BacktestRunner(hook=RiskChecker([])).add(SmaCross())
    assert hooked._sparse_plan(data) is None  # risk checks read the account at every bar
    book = BacktestRunner(BacktestConfig(fill_model="book")).add(SmaCross())
    assert book._sparse_plan(data) is None

    class Custom(SmaCross):
        def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:  # its table no longer applies
            super().on_bar(bar, ctx)

    assert not Custom.has_decision_table() and SmaCross.has_decision_table()
    assert BacktestRunner().add(Custom())._sparse_plan(data) is None
    assert not create_strategy("model_signal").has_decision_table()


def test_a_pair_wakes_where_its_table_acts_for_the_side_held() -> None:
    data = prepare_bars(walk_frame(400))
    plan = build_plan(data.ts, data.symbol, data.close, [(SmaCross(fast=3, slow=9), None)])
    (pair,) = plan.pairs
    long_rows = np.flatnonzero(pair.table[1] == 1)
    short_rows = np.flatnonzero(pair.table[1] == 0)
    assert pair.next_after(-1, 0) == long_rows[0]  # flat: the first bar wanting long
    assert pair.next_after(long_rows[0], 1) == short_rows[short_rows > long_rows[0]][0]
    # An entry that could not be sized wakes only where the close is at most the bound.
    row = int(long_rows[0])
    bound = float(np.median(data.close))
    later = long_rows[(long_rows > row) & (data.close[long_rows] <= bound)]
    assert pair.next_affordable(row, 0, bound) == later[0]
    assert pair.next_affordable(row, 0, 0.0) == NEVER


def _next_acting(table: np.ndarray, rows: np.ndarray, row: int, held: int) -> int:
    """The first global row after ``row`` where ``table`` acts while holding ``held``: every
    row looked at (what ``Pair.next_after``'s runs must give)."""
    wanted = table[held + 1]
    for k, global_row in enumerate(rows):
        if global_row > row and wanted[k] == wanted[k] and wanted[k] != held:
            return int(global_row)
    return NEVER


@pytest.mark.parametrize("symbols", [("BTC-USD",), ("BTC-USD", "ETH-USD")])
def test_a_pairs_runs_give_every_acting_row_after_any_row(symbols) -> None:
    # Runs of acting rows (first and last of each) stand for the rows themselves: from every
    # row, own or another symbol's, the next acting one for each side held is the one a look
    # at every row finds; next_affordable reads the acting rows built on first use.
    frames = [walk_frame(300, seed=3 + k).assign(symbol=s) for k, s in enumerate(symbols)]
    data = prepare_bars(pd.concat(frames, ignore_index=True))
    strategy = create_strategy("sma_cross", fast=3, slow=9, allow_short=True)
    plan = build_plan(data.ts, data.symbol, data.close, [(strategy, None)], names=data.symbols)
    for pair in plan.pairs:
        rows = plan.rows[pair.symbol]
        for held in (-1, 0, 1):
            for row in range(-1, data.ts.size + 1):
                assert pair.next_after(row, held) == _next_acting(pair.table, rows, row, held)
            acting, closes = pair.acting(held)
            local = np.searchsorted(rows, acting)
            assert (pair.table[held + 1][local] != held).all()
            assert closes.tolist() == data.close[acting].tolist()
            bound = float(np.median(closes))
            for row in range(-1, data.ts.size, 7):
                cheap = acting[(acting > row) & (closes <= bound)]
                assert pair.next_affordable(row, held, bound) == (cheap[0] if cheap.size else NEVER)


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "full"])
@pytest.mark.parametrize("offset_ns", [0, 500], ids=["whole_us", "sub_us"])
def test_trades_read_off_the_fill_rows_equal_the_search_by_time(sparse, offset_ns) -> None:
    # Both replays hand the result each fill's row (one symbol, next-open fills) instead of
    # searching the bars by the fills' times; bars_held must be what the search gives. A bar
    # starting between two microseconds (fills are stamped to the microsecond) is found one
    # bar earlier by the search: the rows are then not used.
    bars = days_frame(2500, seed=5)
    bars["ts"] = bars["ts"] + pd.Timedelta(offset_ns, unit="ns")
    params = {"fast": 3, "slow": 11, "allow_short": True}  # reversals: two fills on one bar
    result = run(bars, [("sma_cross", params)], CONFIGS[0], sparse=sparse)
    starts = {"BTC-USD": prepare_bars(bars).ts}
    last = {"BTC-USD": D(str(bars["close"].iloc[-1]))}
    searched = round_trips(result.fills, bar_starts=starts, last_prices=last)
    assert len(searched) > 20 and any(t.bars_held > 1 for t in searched)
    assert result.trades == searched
