"""The vectorised path gives the event-driven runner's trades on the strategies it supports."""

from __future__ import annotations

import numpy as np
import pytest

from backtesting.engine.errors import BacktestConfigError, UnsupportedStrategyError
from backtesting.engine.fills import FixedBps, VolumeShare
from backtesting.engine.runner import BacktestConfig, prepare_bars, run_backtest
from backtesting.engine.vectorised import run_vectorised, sweep
from tests.backtesting.engine.helpers import D, sim_frame, walk_frame
from trading.engine.series import IndicatorCache
from trading.engine.strategies import create_strategy

CASES = [
    ("sma_cross", {"fast": 5, "slow": 20}),
    ("sma_cross", {"fast": 7, "slow": 25, "allow_short": True}),
    ("rsi_reversion", {"period": 7, "lower": 35.0, "upper": 65.0}),
    ("bollinger_breakout", {"period": 15, "k": 1.5}),
    ("bollinger_breakout", {"period": 20, "k": 1.0, "allow_short": True}),
]


@pytest.fixture(scope="module")
def data():
    return prepare_bars(walk_frame(2500, seed=8))


@pytest.mark.parametrize("model", ["next_open", "close"])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_same_trades_as_the_event_driven_runner(data, name, params, model) -> None:
    cfg = BacktestConfig(taker_fee_bps=D(10), fill_model=model, slippage=FixedBps(3))
    event = run_backtest(create_strategy(name, **params), data, cfg)
    vector = run_vectorised(name, data, params, cfg)
    assert len(event.trades) == len(vector.trades) > 3
    for e, v in zip(event.trades, vector.trades, strict=True):
        assert e.entry_ts == vector.timestamps(v.entry_index)
        assert e.exit_ts == vector.timestamps(v.exit_index)
        assert float(e.entry_price) == v.entry_price
        assert (e.exit_price is None and v.exit_price is None) or float(
            e.exit_price
        ) == v.exit_price
        assert float(e.quantity) == pytest.approx(v.quantity, rel=1e-12)
    assert float(event.final_equity) == pytest.approx(vector.final_equity, rel=1e-10)
    np.testing.assert_allclose(event.equity.to_numpy(), vector.equity, rtol=1e-10)
    for key in ("sharpe", "max_drawdown", "trades", "win_rate", "profit_factor", "exposure_time"):
        assert event.metrics[key] == pytest.approx(vector.metrics[key], rel=1e-6, nan_ok=True)


def test_on_the_simulated_market_too() -> None:
    bars = sim_frame(4000)
    cfg = BacktestConfig(taker_fee_bps=D(10))
    event = run_backtest(create_strategy("sma_cross", fast=10, slow=30), bars, cfg)
    vector = run_vectorised("sma_cross", bars, {"fast": 10, "slow": 30}, cfg)
    assert [float(t.entry_price) for t in event.trades] == [t.entry_price for t in vector.trades]
    assert float(event.final_equity) == pytest.approx(vector.final_equity, rel=1e-10)


def test_sweep_shares_indicators_and_reports_each_set(data) -> None:
    sets = [{"fast": f, "slow": s} for f in (3, 5) for s in (10, 20)]
    table = sweep("sma_cross", data, sets, BacktestConfig(taker_fee_bps=D(10)))
    assert list(table["fast"]) == [3, 3, 5, 5] and len(table) == 4
    single = run_vectorised("sma_cross", data, sets[2], BacktestConfig(taker_fee_bps=D(10)))
    assert table.loc[2, "final_equity"] == single.final_equity
    assert "m_sharpe" in table.columns


def test_indicator_cache_memoises() -> None:
    cache = IndicatorCache(np.arange(50, dtype=float))
    assert cache.sma(5) is cache.sma(5)
    assert cache.sma(5)[4] == 2.0


def test_unsupported_requests_are_refused(data) -> None:
    with pytest.raises(UnsupportedStrategyError):
        run_vectorised("model_signal", data)
    with pytest.raises(BacktestConfigError):
        run_vectorised("sma_cross", data, config=BacktestConfig(slippage=VolumeShare()))
    with pytest.raises(BacktestConfigError):
        run_vectorised("sma_cross", data, config=BacktestConfig(volume_cap=0.1))
    with pytest.raises(BacktestConfigError):
        run_vectorised("sma_cross", prepare_bars(sim_frame(100, ("BTC-USD", "ETH-USD"))))


@pytest.mark.parametrize("name", ["sma_cross", "bollinger_breakout", "rsi_reversion"])
def test_entries_too_small_for_one_lot_are_retried_like_the_strategy_does(data, name) -> None:
    # About one lot at the median price: entries above it size to zero, and the strategies
    # try again on their next entry decisions (lower prices) while the signal lasts.
    cfg = BacktestConfig(initial_cash=D("0.00000085"), taker_fee_bps=D(10))
    event = run_backtest(create_strategy(name), data, cfg)
    vector = run_vectorised(name, data, {}, cfg)
    assert [t.entry_ts for t in event.trades] == [
        vector.timestamps(t.entry_index) for t in vector.trades
    ]
    assert float(event.final_equity) == pytest.approx(vector.final_equity, rel=1e-9)


def test_refuses_several_symbols() -> None:
    bars = sim_frame(50, ("BTC-USD", "ETH-USD"))
    for given in (bars, prepare_bars(bars), prepare_bars(bars).slice(0, 10)):
        with pytest.raises(BacktestConfigError, match="one symbol at a time"):
            run_vectorised("sma_cross", given, {"fast": 3, "slow": 9})
    run_vectorised("sma_cross", prepare_bars(walk_frame(60)).slice(5, 60), {"fast": 3, "slow": 9})


def test_fees_round_as_the_engine_does_on_ties_of_any_size() -> None:
    """Half-even ties of large fees (84.89834735905 → ...590) are judged in Decimal: a fixed
    float tolerance missed them once the float's ulp outgrew it (the 1M-bar bench drifted)."""
    from decimal import Decimal

    from backtesting.engine.vectorised import _costs, _fee
    from trading.engine.money import fee_for

    costs = _costs(BacktestConfig(taker_fee_bps=D(10)), {"fraction": D(1), "lot": D("1E-8")})
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(3000):
        units = int(rng.integers(1, 10**9)) * 1000 + 1  # qty × price ≡ cents (mod 1000)
        cents = int(rng.integers(1, 10**4)) * 1000 + int(rng.choice([500, 499, 501, 0]))
        qty, price = Decimal(units).scaleb(-8), Decimal(cents).scaleb(-2)
        assert _fee(float(qty), float(price), costs) == float(fee_for(qty, price, D(10)))
        checked += 1
    assert _fee(1.65598766, 51267.5, costs) == float(fee_for(D("1.65598766"), D("51267.5"), D(10)))
    assert checked == 3000
