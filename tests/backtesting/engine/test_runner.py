"""The event-driven runner: live stack, fill timing, shared accounts, risk hook, progress."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from backtesting.engine.errors import BacktestConfigError, BacktestDataError
from backtesting.engine.runner import BacktestConfig, BacktestRunner, prepare_bars, run_backtest
from marketdata.engine.events import Bar, BookSnapshot, Trade
from risk.engine.checks import RiskChecker
from risk.engine.limits import LimitAction, LimitKind, LimitSpec
from tests.backtesting.engine.helpers import SYM, D, minute, sim_frame, walk_frame
from trading.engine.money import to_decimal
from trading.engine.orders import OrderStatus
from trading.engine.strategies import create_strategy
from trading.engine.strategy import Strategy, StrategyContext

FEES = BacktestConfig(taker_fee_bps=D(10))


def test_sma_cross_run_is_exact_and_fills_at_the_next_open() -> None:
    bars = walk_frame(1500)
    result = run_backtest(create_strategy("sma_cross", fast=5, slow=20), bars, FEES)
    assert len(result.equity) == 1500
    assert len(result.closed_trades) > 10
    # Round trips account for every cent: their P&L adds up to the equity change exactly.
    assert sum((t.pnl for t in result.trades), D(0)) == result.final_equity - D(100000)
    opens = dict(zip(pd.DatetimeIndex(bars["ts"]), bars["open"], strict=True))
    orders = {o.client_order_id: o for o in result.orders}
    for fill in result.fills:
        order = orders[fill.order_id]
        assert fill.ts == order.created_ts  # decided at a bar's end = the next bar's start
        assert fill.price == to_decimal(opens[pd.Timestamp(fill.ts)])
    assert result.equity.iloc[-1] == pytest.approx(float(result.final_equity))
    json.dumps(result.to_dict())  # the Django side stores it as JSON


def test_close_fill_model_fills_at_the_deciding_bars_close() -> None:
    bars = walk_frame(400)
    cfg = BacktestConfig(fill_model="close")
    result = run_backtest(create_strategy("sma_cross", fast=5, slow=20), bars, cfg)
    ends = pd.DatetimeIndex(bars["ts"]) + timedelta(minutes=1)
    closes = dict(zip(ends, bars["close"], strict=True))
    assert result.fills
    for fill in result.fills:
        assert fill.price == to_decimal(closes[pd.Timestamp(fill.ts)])


def test_several_symbols_share_one_account() -> None:
    bars = sim_frame(1500, ("BTC-USD", "ETH-USD"))
    strategy = create_strategy("sma_cross", fast=5, slow=20, fraction=Decimal("0.45"))
    result = run_backtest(strategy, bars, FEES)
    assert len(result.equity) == 1500  # one point per timestamp, not per bar
    assert {t.symbol for t in result.trades} == {"BTC-USD", "ETH-USD"}
    assert sum((t.pnl for t in result.trades), D(0)) == result.final_equity - D(100000)
    assert result.metrics["exposure_time"] > 0
    assert list(result.prices.columns) == ["BTC-USD", "ETH-USD"]


def test_two_strategies_on_their_own_symbols() -> None:
    bars = sim_frame(600, ("BTC-USD", "ETH-USD"))
    runner = BacktestRunner(FEES)
    runner.add(create_strategy("sma_cross", fraction="0.4"), symbols=["BTC-USD"], strategy_id="a")
    runner.add(
        create_strategy("rsi_reversion", fraction="0.4"), symbols=["ETH-USD"], strategy_id="b"
    )
    result = runner.run(bars)
    by_strategy = {(t.strategy, t.symbol) for t in result.trades}
    assert by_strategy <= {("a", "BTC-USD"), ("b", "ETH-USD")}
    assert ("a", "BTC-USD") in by_strategy


def test_risk_checker_reduces_orders_through_the_same_hook_as_live() -> None:
    limit = LimitSpec(LimitKind.MAX_POSITION_PCT, Decimal("0.5"), LimitAction.REDUCE)
    checker = RiskChecker([limit])
    result = run_backtest(
        create_strategy("sma_cross", fast=5, slow=20, fraction=1), walk_frame(600), hook=checker
    )
    entries = [o for o in result.orders if o.side.value == "buy"]
    assert entries and all("reduced_by" in o.metadata for o in entries)
    assert result.risk_events  # reductions are recorded like in live trading
    assert result.metrics["exposure_time"] > 0


def test_drawdown_halt_stops_new_entries() -> None:
    limit = LimitSpec(LimitKind.MAX_DRAWDOWN_PCT, Decimal("0.002"), LimitAction.HALT)
    result = run_backtest(
        create_strategy("sma_cross", fast=3, slow=8),
        walk_frame(800),
        FEES,
        hook=RiskChecker([limit]),
    )
    rejected = [o for o in result.orders if o.status is OrderStatus.REJECTED]
    assert rejected and "halted" in rejected[-1].reject_reason


def test_progress_is_reported_every_n_bars() -> None:
    calls: list[tuple[int, int]] = []
    run_backtest(
        create_strategy("sma_cross"),
        walk_frame(250),
        progress=lambda done, total: calls.append((done, total)),
        progress_every=100,
    )
    assert calls == [(100, 250), (200, 250), (250, 250)]


class Recorder(Strategy):
    """Records the order in which events arrive."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        self.seen.append(f"bar {bar.ts:%H:%M}")

    def on_trade(self, trade: Trade, ctx: StrategyContext) -> None:
        self.seen.append(f"trade {trade.ts:%H:%M:%S}")


def test_prints_and_books_are_merged_in_time_with_bars() -> None:
    bars = walk_frame(3)
    trades = [
        Trade(SYM, minute(1) + timedelta(seconds=30), 100.0, 1.0),
        Trade(SYM, minute(1), 100.0, 1.0),
    ]
    books = [BookSnapshot(SYM, minute(1), ((99.0, 5.0),), ((101.0, 5.0),))]
    strategy = Recorder()
    run_backtest(strategy, bars, trades=trades, books=books, progress=lambda *_: None)
    # The bar starting 00:00 is known at 00:01, before the print stamped 00:01:00.
    assert strategy.seen == [
        "bar 00:00",
        "trade 00:01:00",
        "trade 00:01:30",
        "bar 00:01",
        "bar 00:02",
    ]


def test_book_fill_model_uses_given_snapshots() -> None:
    bars = walk_frame(60)
    books = [
        BookSnapshot(SYM, minute(i + 1), ((float(c) - 1, 1e6),), ((float(c) + 1, 1e6),))
        for i, c in enumerate(bars["close"])
    ]
    cfg = BacktestConfig(fill_model="book")
    result = run_backtest(create_strategy("sma_cross", fast=3, slow=8), bars, cfg, books=books)
    asks = {b.ts: to_decimal(b.asks[0][0]) for b in books}
    buys = [f for f in result.fills if f.side.value == "buy"]
    assert buys and all(f.price == asks[f.ts] for f in buys)


def test_bad_data_is_refused() -> None:
    bars = walk_frame(5)
    with pytest.raises(BacktestDataError):
        prepare_bars(bars.drop(columns=["volume"]))
    with pytest.raises(BacktestDataError):
        prepare_bars(bars.assign(ts=pd.DatetimeIndex(bars["ts"]).tz_localize(None)))
    with pytest.raises(BacktestDataError):
        prepare_bars(pd.concat([bars, bars.iloc[:1]]))
    with pytest.raises(BacktestConfigError):
        BacktestRunner().run(bars)


def test_bars_given_as_events_and_timeframe_inference() -> None:
    bars = walk_frame(50)
    events = [
        Bar(SYM, "1m", ts.to_pydatetime(), o, h, lo, c, v)
        for ts, o, h, lo, c, v in bars[["ts", "open", "high", "low", "close", "volume"]].itertuples(
            index=False
        )
    ]
    data = prepare_bars(events)
    assert data.timeframe == "1m" and len(data) == 50
    a = run_backtest(create_strategy("sma_cross", fast=3, slow=8), events)
    b = run_backtest(create_strategy("sma_cross", fast=3, slow=8), bars)
    assert a.final_equity == b.final_equity


def test_config_validates_fill_model_and_cash() -> None:
    assert BacktestConfig(fill_model="close").fill_model.value == "close"
    with pytest.raises(BacktestConfigError):
        BacktestConfig(fill_model="vwap")
    with pytest.raises(BacktestConfigError):
        BacktestConfig(initial_cash=0)


def test_bar_data_knows_its_symbols_and_slices_keep_them() -> None:
    data = prepare_bars(sim_frame(50, ("ETH-USD", "BTC-USD")))
    assert data.names == ("BTC-USD", "ETH-USD")  # from prepare_bars, sorted
    assert data.symbols == ["BTC-USD", "ETH-USD"]
    one = prepare_bars(walk_frame(30))
    assert one.slice(5, 10).names == (SYM,) and one.slice(5, 10).symbols == [SYM]
    assert one.slice(5, 5).names is None  # nothing left to name
    two = data.slice(0, 1)  # one bar: only its own symbol, computed when asked
    assert two.names is None and two.symbols == [str(data.symbol[0])]


def test_sparse_runs_pause_the_collector_full_replays_do_not() -> None:
    import gc

    from trading.engine.strategies import SmaCross

    seen: list[tuple[str, bool]] = []

    class Probe(SmaCross):  # keeps SmaCross's decision table: the sparse replay applies
        def on_decision(self, bar, choices, ctx):  # type: ignore[no-untyped-def]
            seen.append(("sparse", gc.isenabled()))
            return super().on_decision(bar, choices, ctx)

    class Own(Strategy):  # its own on_bar, no table: the full replay
        name = "own"

        def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
            seen.append(("full", gc.isenabled()))

    bars = walk_frame(300)
    assert gc.isenabled()
    run_backtest(Probe(fast=3, slow=9), bars)
    run_backtest(Own(), bars)
    assert {kind for kind, _ in seen} == {"sparse", "full"}
    assert all(on == (kind == "full") for kind, on in seen)
    assert gc.isenabled()  # restored after the run
    gc.disable()
    try:
        run_backtest(Probe(fast=3, slow=9), bars)
        assert not gc.isenabled()  # a caller's own pause is left alone
    finally:
        gc.enable()


def test_a_run_freezes_what_existed_collects_its_own_cycles_and_puts_the_collector_back() -> None:
    import gc
    import threading

    from backtesting.engine.runner import GC_YOUNG_OBJECTS

    seen: list[tuple[int, tuple[int, int, int]]] = []
    freed: list[int] = []

    class Cycle:
        def __init__(self, n: int) -> None:
            self.me, self.n = self, n

        def __del__(self) -> None:
            freed.append(self.n)

    class Own(Strategy):  # the full replay: user code on every bar, the collector on
        name = "own"

        def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
            if not seen:
                seen.append((gc.get_freeze_count(), gc.get_threshold()))
            Cycle(len(freed))  # unreachable at once: only a collection frees it

    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    run_backtest(Own(), walk_frame(30_000))
    frozen, threshold = seen[0]
    assert frozen > 1000  # the modules and everything else alive before the run
    assert threshold == (GC_YOUNG_OBJECTS, *before[1:])
    assert len(freed) > 20_000  # the strategy's cycles were collected during the run
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before  # put back
    # A process that froze its own objects keeps them frozen; concurrent runs restore once.
    gc.freeze()
    try:
        kept = gc.get_freeze_count()
        runs = [threading.Thread(target=run_backtest, args=(Own(), walk_frame(300))) for _ in "ab"]
        for t in runs:
            t.start()
        for t in runs:
            t.join()
        # Still frozen (a few frozen objects die by reference counting meanwhile).
        assert gc.get_freeze_count() > kept - 1000 and gc.get_threshold() == before
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(
    "symbols",
    [
        ["BTC-USD"] * 6,  # one symbol: found without hashing each row
        ["ETH-USD", "BTC-USD"] * 3,
        [7] * 6,  # not strings: as strings
        pd.array(["BTC-USD"] * 6, dtype="string"),
        ["BTC-USD"] * 5 + ["ETH-USD"],  # the same first symbol, then another
    ],
    ids=["one", "two", "numbers", "string dtype", "first repeated"],
)
def test_prepare_bars_codes_symbols_as_sorted_strings_shuffled_or_not(symbols) -> None:
    stamps = pd.date_range("2024-01-01", periods=6, freq="1min", tz="UTC")
    frame = pd.DataFrame(
        {"ts": stamps, "symbol": symbols, "open": 1.0, "high": 2.0, "low": 0.5, "volume": 1.0}
    ).assign(close=np.arange(6, dtype=float))
    names = sorted({str(s) for s in symbols})
    for bars in (frame, frame.iloc[::-1]):
        data = prepare_bars(bars)
        assert data.names == tuple(names) and data.timeframe == "1m"
        assert data.symbol.tolist() == [str(s) for s in symbols]
        assert data.close.tolist() == list(range(6)) and (np.diff(data.ts) > 0).all()
