"""HTML reports are self-contained (no CDN) and come with the trade journal as CSV."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from backtesting.engine.errors import BacktestConfigError
from backtesting.engine.montecarlo import shuffle_trades
from backtesting.engine.optimize import grid_search, local_evaluator, walk_forward
from backtesting.engine.plotly_asset import SCRIPT_NAME, plotly_source
from backtesting.engine.report import monthly_returns, render_html, write_report
from backtesting.engine.runner import BacktestConfig, run_backtest
from tests.backtesting.engine.helpers import D, walk_frame
from trading.engine.strategies import create_strategy


@pytest.fixture(scope="module")
def run():
    bars = walk_frame(1500)
    cfg = BacktestConfig(taker_fee_bps=D(10))
    result = run_backtest(create_strategy("sma_cross", fast=5, slow=20), bars, cfg)
    space = {"fast": [3, 5], "slow": [20, 30]}
    found = grid_search(space, local_evaluator("sma_cross", bars, cfg), "sharpe")
    wf = walk_forward("sma_cross", bars, space, cfg, train=800, test=300)
    mc = shuffle_trades(
        [t.return_pct for t in result.closed_trades], initial_equity=1e5, n_simulations=100
    )
    return result, found, wf, mc


def test_report_is_offline_and_complete(run, tmp_path) -> None:
    result, found, wf, mc = run
    files = write_report(result, tmp_path / "r" / "run.html", search=found, walk_forward=wf,
                         montecarlo=[mc])  # fmt: skip
    page = files.html.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?https?:", page, re.IGNORECASE)
    assert not re.search(r"<link[^>]*https?:", page, re.IGNORECASE)
    # plotly.js is the package's own copy beside the page, loaded by a relative URL (no CDN).
    assert "Plotly.newPlot" in page and len(page) < 1_000_000
    assert f'<script src="{SCRIPT_NAME}"' in page
    assert (files.html.parent / SCRIPT_NAME).read_bytes() == plotly_source().read_bytes()
    assert '"type":"date"' in page  # time axes given as epoch milliseconds stay dates
    for div in ("equity", "monthly", "price0", "optimisation", "walkforward", "mc0"):
        assert f'id="{div}"' in page
    assert "Trade journal" in page and "sharpe" in page
    journal = pd.read_csv(files.csv)
    assert len(journal) == len(result.trades)
    assert list(journal.columns[:4]) == ["symbol", "side", "quantity", "entry_ts"]


def test_report_without_optional_sections(run) -> None:
    page = render_html(run[0])
    assert 'id="optimisation"' not in page and 'id="mc0"' not in page


def test_monthly_returns_table() -> None:
    ix = pd.date_range("2024-01-15", "2024-03-20", freq="D", tz="UTC")
    equity = pd.Series(np.linspace(100, 130, ix.size), index=ix)
    table = monthly_returns(equity)
    jan_end = equity[:"2024-01-31"].iloc[-1]
    assert table.loc[2024, "Jan"] == pytest.approx(jan_end / 100 - 1)
    assert table.loc[2024, "Feb"] == pytest.approx(equity[:"2024-02-29"].iloc[-1] / jan_end - 1)
    assert np.isnan(table.loc[2024, "Apr"])


def test_report_path_must_be_html(run, tmp_path) -> None:
    with pytest.raises(BacktestConfigError):
        write_report(run[0], tmp_path / "report.txt")
