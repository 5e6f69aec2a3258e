"""The full replay's equity curve from the logged account states equals one read every bar.

Under next-open fills with one bar per timestamp and nothing after a bar, ``drive_bars`` logs
the account after each bar that had fills and computes the curve for every bar at once
(``_Session._drive_logged``); with a risk loop it still reads ``equity_estimate`` after each
bar. Both must give the same curve: fills at the open (market) and inside the bar (limits
resting at the inner venue), two symbols whose bars alternate (each position marked at its own
symbol's latest close), whole days so the portfolio rolls its day.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from backtesting.engine.runner import BacktestConfig, run_backtest
from backtesting.engine.sparse import StateLog, equity_by_row
from tests.backtesting.engine.helpers import walk_frame
from trading.engine.hooks import AllowAllHook
from trading.engine.orders import OrderType
from trading.engine.strategy import Strategy

D = Decimal


class _Trades(Strategy):
    """Market entries and exits, and limit buys below the close that fill bars later."""

    name = "trades"

    def on_start(self, ctx):
        self.seen = 0

    def on_bar(self, bar, ctx):
        self.seen += 1
        held = ctx.position(bar.symbol)
        if self.seen % 13 == 0 and held:
            ctx.sell(bar.symbol, held)
        elif self.seen % 5 == 0:
            ctx.buy(bar.symbol, D("0.7"))
        elif self.seen % 7 == 0:
            price = D(str(round(bar.close * 0.998, 2)))
            ctx.buy(bar.symbol, D("0.3"), type=OrderType.LIMIT, price=price)


class _WatchingHook(AllowAllHook):
    """Allows everything, but has an account loop: the replay then reads equity every bar."""

    def check_account(self, view, now) -> None:
        return None

    def drain_mode_changes(self) -> list:
        return []

    def drain_events(self) -> list:
        return []


def _alternating(n: int) -> pd.DataFrame:
    """Two symbols' bars on alternate minutes (one bar per timestamp)."""
    btc, eth = walk_frame(n, seed=4), walk_frame(n, seed=9, symbol="ETH-USD", start=50.0)
    btc["ts"] = btc["ts"] + (btc["ts"] - btc["ts"].iloc[0])  # even minutes
    eth["ts"] = btc["ts"] + pd.Timedelta(minutes=1)  # odd minutes
    return pd.concat([btc, eth]).sort_values("ts", ignore_index=True)


@pytest.mark.parametrize("bars", [walk_frame(3000, seed=2), _alternating(1500)], ids=["one", "two"])
def test_the_logged_curve_equals_the_curve_read_bar_by_bar(bars) -> None:
    config = BacktestConfig(initial_cash=D(10_000), taker_fee_bps=D(10), fill_model="next_open")
    logged = run_backtest(_Trades(), bars, config)
    read = run_backtest(_Trades(), bars, config, hook=_WatchingHook())
    assert len(logged.fills) > 300 and {f.symbol for f in logged.fills} == set(bars["symbol"])
    assert any(o.type is OrderType.LIMIT for o in logged.orders)
    assert logged.final == read.final  # the same run
    assert (logged.equity.index == read.equity.index).all() and len(logged.equity) == len(bars)
    np.testing.assert_allclose(logged.equity.to_numpy(), read.equity.to_numpy(), rtol=1e-12)
    assert logged.equity.iloc[-1] == pytest.approx(float(logged.final.equity), rel=1e-12)
    assert logged.metrics == pytest.approx(read.metrics, rel=1e-9, nan_ok=True)


def _reference_equity(log: StateLog, symbol: np.ndarray, close: np.ndarray) -> np.ndarray:
    """The curve spelled out: per row, the state in force and each position at its last close."""
    index = np.cumsum(np.isin(np.arange(close.size), log.rows[1:]))
    out = np.array([float(c) for c in log.cash])[index]
    for sym in sorted({s for p in log.positions for s, q in p.items() if q}):
        qty = np.array([float(p.get(sym, 0)) for p in log.positions])[index]
        last = np.full(close.size, np.nan)
        seen = np.nan
        for r in range(close.size):
            seen = close[r] if symbol[r] == sym else seen
            last[r] = seen
        out = out + np.where(qty != 0, qty * np.nan_to_num(last), 0.0)
    return out


@pytest.mark.parametrize("recorded", [[], [0], [3, 4, 9], [0, 5, 11]])
def test_equity_by_row_from_the_state_log_equals_the_curve_spelled_out(recorded) -> None:
    """Run lengths per state (``StateLog.counts``) give each row its state; marks with a NaN
    (a symbol before its first bar) take the masked form, finite ones the plain product."""
    symbol = np.array(["A", "B"] * 6, dtype=object)
    close = np.arange(12, dtype=float) + 100.5
    log = StateLog.starting(D(1000))
    for k, row in enumerate(recorded):
        log.record(row, D(1000 - 10 * k), {"A": D(k % 2), "B": D(k) / 4})
    counts = log.counts(close.size)
    assert counts.sum() == close.size and (counts >= 0).all()
    equity, got_counts, _ = equity_by_row(log, symbol, close)
    assert (got_counts == counts).all()
    assert equity.tobytes() == _reference_equity(log, symbol, close).tobytes()
    held = np.repeat(log.holding(), counts)
    index = np.cumsum(np.isin(np.arange(close.size), recorded))
    assert [log.state_after(r) for r in range(close.size)] == index.tolist()
    assert held.tolist() == [any(log.positions[i].values()) for i in index]
    for positions in log.positions:  # one symbol: every row is its bar
        positions.pop("B", None)
    one = np.array(["A"] * 12, dtype=object)
    only, _, _ = equity_by_row(log, one, close, single=True)
    assert only.tobytes() == _reference_equity(log, one, close).tobytes()
