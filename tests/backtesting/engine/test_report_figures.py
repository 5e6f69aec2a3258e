"""Report figures are plotly.js JSON written directly: no plotly.py objects, safe in a page.

The page's scripts carry the figures as plotly.js reads them (typed arrays for numbers, epoch
milliseconds on date axes); building them must not import plotly.py's figure classes (about a
second per 200,000-bar report), and no text from the run (a symbol, a title) can end the script
element it sits in.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backtesting.engine.report import equity_figure, render_html
from backtesting.engine.runner import BacktestConfig, run_backtest
from tests.backtesting.engine.helpers import D, walk_frame
from trading.engine.strategies import create_strategy

ROOT = Path(__file__).resolve().parents[3]
HOSTILE = "X</script><script>alert(1)</script>"


@pytest.fixture(scope="module")
def result():
    bars = walk_frame(600)
    return run_backtest(create_strategy("sma_cross", fast=5, slow=20), bars,
                        BacktestConfig(taker_fee_bps=D(10)))  # fmt: skip


def _figures(page: str) -> dict[str, tuple[list, dict]]:
    """Return each plot's (data, layout) as the page hands them to Plotly.newPlot."""
    found = re.findall(r'Plotly\.newPlot\("(\w+)", (\[.*?\]), (\{.*?\}), \{"displaylogo"', page)
    return {name: (json.loads(data), json.loads(layout)) for name, data, layout in found}


def test_equity_is_drawn_from_the_run_exactly(result) -> None:
    data, layout = _figures(render_html(result))["equity"]
    equity = data[0]
    assert equity["name"] == "equity" and layout["xaxis"]["type"] == "date"
    x = np.frombuffer(base64.b64decode(equity["x"]["bdata"]), "<f8")
    y = np.frombuffer(base64.b64decode(equity["y"]["bdata"]), "<f8")
    expected_ms = result.equity.index.asi8 // 1_000_000
    assert x.tolist() == expected_ms.astype(float).tolist()
    assert y.tolist() == result.equity.to_numpy().tolist()
    assert layout["template"]["layout"]["paper_bgcolor"] == "white"  # plotly_white


def test_text_from_the_run_cannot_close_the_script(result) -> None:
    hostile = dataclasses.replace(
        result,
        prices=result.prices.set_axis([HOSTILE], axis=1),  # the symbol names the price chart
        trades=[dataclasses.replace(t, symbol=HOSTILE) for t in result.trades],
    )
    page = render_html(hostile, title=HOSTILE)
    assert "<script>alert(1)" not in page
    assert page.count("</script>") == page.count("<script")  # every script closes once
    _, layout = _figures(page)["price0"]
    assert layout["title"]["text"] == f"{HOSTILE}: price and trades"  # escaped, not lost


def test_figures_are_built_without_plotly_figure_objects() -> None:
    code = (
        "import sys, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'rrr_site.settings');"
        "import django; django.setup();"
        "from tests.backtesting.engine.helpers import D, walk_frame;"
        "from backtesting.engine.runner import BacktestConfig, run_backtest;"
        "from backtesting.engine.report import render_html;"
        "from trading.engine.strategies import create_strategy;"
        "r = run_backtest(create_strategy('sma_cross', fast=5, slow=20), walk_frame(300),"
        " BacktestConfig(taker_fee_bps=D(10)));"
        "page = render_html(r, plotly_src='plotly.min.js');"
        "print(sorted(m for m in sys.modules if m.startswith(('plotly.graph_objs',"
        " 'plotly.subplots', 'plotly.io', '_plotly_utils.basevalidators'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_equity_figure_marks_drawdown_below_the_equity(result) -> None:
    fig = equity_figure(result)
    names = [t["name"] for t in fig["data"]]
    assert names[0] == "equity" and names[-1] == "drawdown"
    assert fig["data"][-1]["yaxis"] == "y2" and fig["layout"]["yaxis2"]["tickformat"] == ".1%"
