"""Every figure is defined in the report's glossary; counts print as integers; the report says
which trade count includes the open trade and which calendar a year is."""

from __future__ import annotations

import re

import numpy as np

from backtesting.engine.glossary import METRIC_DEFINITIONS, format_metric
from backtesting.engine.metrics import summarize
from backtesting.engine.report import render_html
from backtesting.engine.runner import BacktestConfig, run_backtest
from tests.backtesting.engine.helpers import D, walk_frame
from trading.engine.strategies import create_strategy


def test_every_reported_metric_is_defined() -> None:
    reported = summarize(
        np.linspace(100, 110, 50),
        initial=100.0,
        periods_per_year=252,
        trade_pnls=[1.0, -1.0],
        trade_returns=[0.01, -0.01],
        benchmark_returns=np.full(50, 0.001),
        in_market=np.ones(50, dtype=bool),
        trial_sharpes=[0.1, 0.2],
        years=0.2,
    )
    assert set(reported) <= set(METRIC_DEFINITIONS), "define each new metric in the glossary"


def test_counts_print_as_integers_and_ratios_to_four_decimals() -> None:
    assert format_metric("trades", 47.0) == "47"
    assert format_metric("max_drawdown_duration", 12.0) == "12"
    assert format_metric("sharpe", 1.23456) == "1.2346"
    assert format_metric("win_rate", float("nan")) == "—"
    assert format_metric("profit_factor", float("inf")) == "inf"


def test_report_defines_its_figures_and_counts_the_open_trade_apart() -> None:
    bars = walk_frame(1200, seed=4)
    cfg = BacktestConfig(taker_fee_bps=D(10))
    result = run_backtest(create_strategy("sma_cross", fast=5, slow=20), bars, cfg)
    still_open = sum(t.is_open for t in result.trades)
    page = render_html(result)
    closed = len(result.trades) - still_open
    assert f"{closed} closed trades" in page
    if still_open:
        assert f"+ {still_open} open at the end" in page
    assert "a year is 525,600 bars (24/7)" in page
    assert "<h2>Glossary</h2>" in page
    assert "<dt>cagr</dt><dd>Compound annual growth rate" in page
    trades_row = re.search(r"<td>trades</td><td class=\"num\">([^<]+)</td>", page)
    assert trades_row is not None and trades_row.group(1) == str(closed)
