"""The ``rebalance`` strategy: trades to target weights in backtests, re-optimises on the past."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from backtesting.engine.runner import BacktestConfig, run_backtest
from marketdata.engine.simulator import SimulatedMarket
from risk.engine.checks import RiskChecker
from risk.engine.limits import LimitAction, LimitKind, LimitSpec
from trading.engine.errors import StrategyConfigError
from trading.engine.strategies import create_strategy

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD", "AVAX-USD")
FEES = BacktestConfig(taker_fee_bps=Decimal(10))


def bars(n: int, symbols: tuple[str, ...] = SYMBOLS):
    """Return ``n`` one-minute bars per symbol of the seeded simulated market."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    market = SimulatedMarket(list(symbols), seed=5)
    return market.history_bars(list(symbols), "1m", start, start + timedelta(minutes=n))


def final_weights(result) -> dict[str, float]:
    """Return each held symbol's share of final equity."""
    equity = float(result.final.equity)
    return {p.symbol: float(p.market_value) / equity for p in result.final.positions if p.quantity}


def test_trades_to_the_target_weights_and_holds_them():
    strategy = create_strategy(
        "rebalance", weights="BTC-USD:0.5,ETH-USD:0.3", symbols="SOL-USD", every=1, band=0.01
    )
    result = run_backtest(strategy, bars(300, SYMBOLS[:3]), FEES)

    weights = final_weights(result)
    assert set(weights) == {"BTC-USD", "ETH-USD"}  # SOL-USD's target is 0: never bought
    assert weights["BTC-USD"] == pytest.approx(0.98 * 0.5, abs=0.02)
    assert weights["ETH-USD"] == pytest.approx(0.98 * 0.3, abs=0.02)
    assert float(result.final.cash) / float(result.final.equity) == pytest.approx(0.216, abs=0.03)
    assert all(f.fee > 0 for f in result.fills)  # every trade pays its fee: no free rebalancing


def test_a_wide_band_trades_once_and_then_leaves_drift_alone():
    strategy = create_strategy("rebalance", weights="BTC-USD:0.5,ETH-USD:0.5", every=1, band=0.3)
    result = run_backtest(strategy, bars(200, SYMBOLS[:2]), FEES)
    assert len(result.orders) == 2 and {o.symbol for o in result.orders} == {"BTC-USD", "ETH-USD"}


def test_a_weight_dropped_to_zero_is_sold():
    # Re-optimising each hour on the last 50 closes: k=2 of 4, so two symbols are always sold.
    strategy = create_strategy(
        "rebalance",
        symbols=",".join(SYMBOLS),
        reoptimise_every=60,
        lookback=50,
        k=2,
        method="exact",
        every=60,
        band=0.0,
    )
    result = run_backtest(strategy, bars(400), FEES)
    assert len(strategy.targets) == 2
    assert sum(strategy.targets.values()) == pytest.approx(Decimal(1))
    assert set(final_weights(result)) == set(strategy.targets)
    sold = {o.symbol for o in result.orders if o.side.value == "sell"}
    assert sold, "re-optimisation changed the chosen pair at least once and sold the old one"


@pytest.mark.parametrize("method", ["greedy", "meanvar", "equal", "qaoa"])
def test_reoptimising_with_each_method_runs_in_a_backtest(method):
    strategy = create_strategy(
        "rebalance",
        symbols=",".join(SYMBOLS[:3]),
        reoptimise_every=100,
        lookback=60,
        k=2,
        method=method,
        every=100,
    )
    result = run_backtest(strategy, bars(250, SYMBOLS[:3]), FEES)
    assert result.fills and 0.99 < float(sum(strategy.targets.values())) <= 1.0 + 1e-9


def test_orders_pass_the_risk_checks():
    limit = LimitSpec(LimitKind.MAX_POSITION_PCT, Decimal("0.2"), LimitAction.REDUCE)
    strategy = create_strategy("rebalance", weights="BTC-USD:0.5,ETH-USD:0.5", every=50)
    result = run_backtest(strategy, bars(120, SYMBOLS[:2]), FEES, hook=RiskChecker([limit]))
    first = result.orders[:2]  # the opening buys asked for 49% each
    assert result.risk_events and all("reduced_by" in o.metadata for o in first)
    assert all(w <= 0.21 for w in final_weights(result).values())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "give weights or symbols"),
        ({"weights": "BTC-USD:0.7,ETH-USD:0.6"}, "more than 1"),
        ({"weights": "BTC-USD"}, "SYMBOL:WEIGHT"),
        ({"weights": "BTC-USD:-0.1"}, ">= 0"),
        ({"symbols": "BTC-USD,ETH-USD"}, "reoptimise_every > 0"),
        ({"symbols": "BTC-USD", "reoptimise_every": 5, "k": 2}, "k must be <= 1"),
        ({"symbols": "BTC-USD", "reoptimise_every": 5, "k": 1, "method": "x"}, "method must be"),
    ],
)
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(StrategyConfigError, match=message):
        create_strategy("rebalance", **params)
