"""Buying power on every backtest path: an all-in entry sized at the signal close and filled at
a higher next open never overdraws the account, and the three paths agree on the trades."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtesting.engine.fills import FixedBps
from backtesting.engine.runner import BacktestConfig, BacktestRunner, prepare_bars
from backtesting.engine.vectorised import run_vectorised
from tests.backtesting.engine.helpers import D, frame
from trading.engine.strategies import create_strategy

CASH = D(10_000)


def gapping_frame(n: int, seed: int, gap: float = 0.004) -> pd.DataFrame:
    """Return a random walk whose opens gap from the previous close by up to ``gap`` either way."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.006, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.uniform(-gap, gap, n))
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    rows = np.round(np.column_stack([open_, high, low, close, np.full(n, 1e6)]), 4)
    return frame([tuple(r) for r in rows.tolist()])


def cash_after_fills(result, initial: Decimal = CASH) -> list[Decimal]:
    """Return the exact cash after every fill of an event-driven result."""
    cash, out = initial, []
    for fill in result.fills:
        cash -= fill.signed_quantity * fill.price + fill.fee
        out.append(cash)
    return out


def run_event(bars, name: str, params: dict, config: BacktestConfig, sparse: bool):
    runner = BacktestRunner(config, sparse=sparse)
    runner.add(create_strategy(name, **params))
    return runner.run(bars)


def test_all_in_entries_filled_at_a_higher_open_never_leave_cash_negative() -> None:
    data = prepare_bars(gapping_frame(1500, seed=5))
    cfg = BacktestConfig(initial_cash=CASH, taker_fee_bps=D(10))
    params = {"fast": 5, "slow": 20, "fraction": D(1)}  # all in
    event = run_event(data, "sma_cross", params, cfg, sparse=False)
    cut = [o for o in event.orders if o.reject_reason.startswith("buying power")]
    assert cut, "the walk gaps up after some signals: those entries must have been cut"
    assert min(cash_after_fills(event)) >= 0
    sparse = run_event(data, "sma_cross", params, cfg, sparse=True)
    assert [asdict(f) for f in sparse.fills] == [asdict(f) for f in event.fills]
    assert sparse.final == event.final
    vector = run_vectorised("sma_cross", data, params, cfg)
    assert vector.ledger.cash.min() >= 0
    assert [float(t.quantity) for t in event.trades] == [t.quantity for t in vector.trades]
    assert abs(float(event.final_equity) / vector.final_equity - 1) < 1e-10


def test_reject_policy_skips_entries_the_cash_cannot_pay_on_both_paths() -> None:
    # 99 % of equity pays the fee at the close; opens more than ~0.9 % higher do not.
    data = prepare_bars(gapping_frame(1500, seed=6, gap=0.02))
    cfg = BacktestConfig(initial_cash=CASH, taker_fee_bps=D(10), buying_power="reject")
    params = {"fast": 5, "slow": 20, "fraction": D("0.99")}
    event = run_event(data, "sma_cross", params, cfg, sparse=True)
    vector = run_vectorised("sma_cross", data, params, cfg)
    assert any(o.reject_reason.startswith("buying power") for o in event.orders)
    assert event.fills
    assert min(cash_after_fills(event)) >= 0
    assert [e.entry_ts for e in event.trades] == [
        vector.timestamps(v.entry_index) for v in vector.trades
    ]


STRATEGIES = st.sampled_from(
    [
        ("sma_cross", {"fast": 3, "slow": 8}),
        ("sma_cross", {"fast": 4, "slow": 12, "allow_short": True}),
        ("rsi_reversion", {"period": 5, "lower": 40.0, "upper": 60.0}),
        ("bollinger_breakout", {"period": 10, "k": 1.0, "allow_short": True}),
    ]
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    strategy=STRATEGIES,
    fraction=st.sampled_from(["0.5", "1", "1.5"]),
    fee=st.sampled_from(["0", "10", "50"]),
    model=st.sampled_from(["next_open", "close"]),
    leverage=st.sampled_from(["1", "2"]),
)
def test_cash_never_below_zero_unless_leverage_is_configured(
    seed, strategy, fraction, fee, model, leverage
) -> None:
    name, params = strategy
    params = {**params, "fraction": D(fraction)}
    data = prepare_bars(gapping_frame(300, seed=seed, gap=0.01))
    lev = D(leverage)
    cfg = BacktestConfig(
        initial_cash=CASH,
        taker_fee_bps=D(fee),
        fill_model=model,
        slippage=FixedBps(5),
        leverage=lev,
    )
    full = run_event(data, name, params, cfg, sparse=False)
    sparse = run_event(data, name, params, cfg, sparse=True)
    vector = run_vectorised(name, data, params, cfg)
    assert [asdict(f) for f in sparse.fills] == [asdict(f) for f in full.fills]
    # Equity before a fill bounds what may be borrowed: gross ≤ leverage × equity at the fill.
    floor = -(lev - 1) * max(CASH, D(str(full.equity.max())))
    assert min(cash_after_fills(full), default=CASH) >= floor
    assert vector.ledger.cash.size == 0 or vector.ledger.cash.min() >= float(floor) - 1e-6
    if lev == 1:
        assert min(cash_after_fills(full), default=CASH) >= 0
        assert vector.ledger.cash.size == 0 or vector.ledger.cash.min() >= -1e-9
    assert len(full.trades) == len(vector.trades)
    for e, v in zip(full.trades, vector.trades, strict=True):
        assert e.entry_ts == vector.timestamps(v.entry_index)
        assert float(e.quantity) == v.quantity or abs(float(e.quantity) / v.quantity - 1) < 1e-9
