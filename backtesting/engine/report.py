"""Self-contained HTML backtest reports (viewable offline) and the trade journal as CSV.

The page loads plotly.js from ``plotly-<version>.min.js`` beside it (copied once per folder from the
installed ``plotly`` package, never a CDN; ``render_html`` alone inlines it), followed by the
figures: equity with buy-and-hold and drawdown, monthly returns heatmap, prices with trade
markers, and, when given, optimisation, walk-forward and Monte Carlo charts; the metrics and the
trade journal are HTML tables, and a glossary defines every figure shown. Long curves are
thinned for drawing (metrics use every point).
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from backtesting.engine.errors import BacktestConfigError
from backtesting.engine.glossary import INTEGER_METRICS, METRIC_DEFINITIONS
from backtesting.engine.metrics import drawdown_curve
from backtesting.engine.montecarlo import MonteCarloResult
from backtesting.engine.optimize import SearchResult, WalkForwardResult
from backtesting.engine.plotly_asset import ensure_plotly_beside, script_tag
from backtesting.engine.result import BacktestResult, RoundTrip, trades_frame

MAX_POINTS = 4000  # per drawn line
MAX_JOURNAL_ROWS = 500  # in the HTML table; the CSV has every trade
MAX_PRICE_SYMBOLS = 4
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px} td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f4f4f4;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
.metrics{columns:3;column-gap:24px} .note{color:#666;font-size:12px}
"""


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Where a report was written."""

    html: Path
    csv: Path


def _thin(series: pd.Series, limit: int = MAX_POINTS) -> pd.Series:
    """Keep at most about ``limit`` points, always the first and the last."""
    if len(series) <= limit:
        return series
    step = math.ceil(len(series) / limit)
    picked = series.iloc[::step]
    return (
        pd.concat([picked, series.iloc[[-1]]]) if picked.index[-1] != series.index[-1] else picked
    )


def _compact_dates(fig: go.Figure) -> None:
    """Give time axes as UTC epoch milliseconds (a binary array) instead of ISO strings.

    A 25-character timestamp per point per line was most of a report's size; plotly.js reads
    numbers on a ``date`` axis as milliseconds since the epoch, shown as the same UTC times.
    """
    dated = False
    for trace in fig.data:
        x = getattr(trace, "x", None)
        if x is None or len(x) == 0:
            continue
        first = x[0]
        if not isinstance(first, dt.datetime | np.datetime64):
            continue
        index = pd.DatetimeIndex(x)
        index = index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")
        trace.x = (index.asi8 // 1_000_000).astype(np.float64)
        dated = True
    if dated:
        fig.update_xaxes(type="date")


def _ms(stamps: Sequence[object] | pd.Index) -> np.ndarray:
    """UTC epoch milliseconds of timestamps, as float64 (for a ``date`` axis).

    Given to plotly as a numeric array, it is neither deep-copied object by object nor written
    as ISO strings: a 200,000-bar report's figures build several times faster.
    """
    index = pd.DatetimeIndex(stamps)
    if len(index) == 0:
        return np.empty(0, dtype=np.float64)
    index = index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")
    return (index.asi8 // 1_000_000).astype(np.float64)


def _div(fig: go.Figure, name: str) -> str:
    fig.update_layout(margin={"l": 50, "r": 20, "t": 40, "b": 40}, template="plotly_white")
    _compact_dates(fig)
    return fig.to_html(
        full_html=False, include_plotlyjs=False, div_id=name, config={"displaylogo": False}
    )


def equity_figure(result: BacktestResult) -> go.Figure:
    """Return equity (with buy and hold) above its drawdown."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3])
    equity = _thin(result.equity)
    fig.add_trace(go.Scatter(x=_ms(equity.index), y=equity.values, name="equity"), row=1, col=1)
    if len(result.benchmark):
        bench = _thin(result.benchmark)
        fig.add_trace(
            go.Scatter(
                x=_ms(bench.index), y=bench.values, name="buy & hold", line={"dash": "dot"}
            ),
            row=1,
            col=1,
        )
    dd = pd.Series(-drawdown_curve(result.equity.to_numpy()), index=result.equity.index)
    dd = _thin(dd)
    fig.add_trace(
        go.Scatter(x=_ms(dd.index), y=dd.values, name="drawdown", fill="tozeroy"), row=2, col=1
    )
    fig.update_yaxes(tickformat=".1%", row=2, col=1)
    fig.update_xaxes(type="date")
    fig.update_layout(title="Equity and drawdown", height=520)
    return fig


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Return month-by-month returns as a (year × month) table."""
    if equity.empty:
        return pd.DataFrame(columns=_MONTHS)
    month_end = equity.resample("ME").last().dropna()
    returns = month_end.pct_change()
    returns.iloc[0] = month_end.iloc[0] / equity.iloc[0] - 1.0
    table = pd.DataFrame({"year": returns.index.year, "month": returns.index.month, "r": returns})
    wide = table.pivot(index="year", columns="month", values="r")
    return wide.reindex(columns=range(1, 13)).set_axis(_MONTHS, axis=1)


def monthly_heatmap(equity: pd.Series) -> go.Figure:
    """Return the monthly returns heatmap."""
    table = monthly_returns(equity)
    fig = go.Figure(
        go.Heatmap(
            z=table.to_numpy(dtype=float),
            x=list(table.columns),
            y=[str(y) for y in table.index],
            colorscale="RdYlGn",
            zmid=0,
            texttemplate="%{z:.1%}",
        )
    )
    fig.update_layout(title="Monthly returns", height=120 + 40 * max(1, len(table)))
    return fig


def price_figure(prices: pd.DataFrame, trades: Sequence[RoundTrip], symbol: str) -> go.Figure:
    """Return the close of ``symbol`` with entry and exit markers of its trades."""
    close = _thin(prices[symbol].dropna())
    fig = go.Figure(
        go.Scatter(x=_ms(close.index), y=close.values, name=symbol, line={"width": 1})
    )
    own = [t for t in trades if t.symbol == symbol][-MAX_POINTS:]
    for side, colour, marker in (
        ("long", "green", "triangle-up"),
        ("short", "red", "triangle-down"),
    ):
        entries = [t for t in own if t.side == side]
        fig.add_trace(
            go.Scatter(
                x=_ms([t.entry_ts for t in entries]),
                y=[float(t.entry_price) for t in entries],
                mode="markers",
                name=f"{side} entry",
                marker={"color": colour, "symbol": marker, "size": 8},
            )
        )
    exits = [t for t in own if t.exit_ts is not None]
    fig.add_trace(
        go.Scatter(
            x=_ms([t.exit_ts for t in exits]),
            y=[float(t.exit_price) for t in exits],  # type: ignore[arg-type]
            mode="markers",
            name="exit",
            marker={"color": "black", "symbol": "x", "size": 7},
        )
    )
    fig.update_xaxes(type="date")
    fig.update_layout(title=f"{symbol}: price and trades", height=420)
    return fig


def optimisation_figure(search: SearchResult) -> go.Figure:
    """Return the objective per trial (a heatmap when exactly two parameters vary)."""
    frame = search.to_frame()
    names = [c for c in frame.columns if c in search.trials[0].params] if search.trials else []
    varying = [n for n in names if frame[n].nunique() > 1]
    if len(varying) == 2:
        table = frame.pivot_table(index=varying[0], columns=varying[1], values="score")
        fig = go.Figure(
            go.Heatmap(
                z=table.to_numpy(dtype=float),
                x=[str(c) for c in table.columns],
                y=[str(i) for i in table.index],
                colorscale="Viridis",
            )
        )
        fig.update_layout(xaxis_title=varying[1], yaxis_title=varying[0])
    else:
        fig = go.Figure(go.Scatter(y=frame["score"], mode="markers", name="trials"))
        fig.update_layout(xaxis_title="trial")
    if search.generations:
        fig.add_trace(go.Scatter(y=search.generations, mode="lines", name="best per generation"))
    fig.update_layout(title=f"{search.method} search: {search.objective}", height=420)
    return fig


def walk_forward_figure(wf: WalkForwardResult) -> go.Figure:
    """Return the stitched out-of-sample equity with window boundaries."""
    equity = _thin(wf.equity)
    fig = go.Figure(go.Scatter(x=equity.index, y=equity.values, name="out-of-sample equity"))
    for outcome in wf.windows:
        if len(outcome.oos_equity):
            fig.add_vline(x=outcome.oos_equity.index[0], line={"width": 1, "dash": "dot"})
    fig.update_layout(title="Walk-forward: stitched out-of-sample equity", height=380)
    return fig


def montecarlo_figure(mc: MonteCarloResult) -> go.Figure:
    """Return histograms of simulated final equity and maximum drawdown."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("final equity", "max drawdown"))
    fig.add_trace(go.Histogram(x=mc.final_equity, name="final equity", nbinsx=50), row=1, col=1)
    fig.add_trace(go.Histogram(x=mc.max_drawdown, name="max drawdown", nbinsx=50), row=1, col=2)
    for p, v in mc.final_equity_percentiles().items():
        fig.add_vline(
            x=v, line={"dash": "dot", "width": 1}, row=1, col=1, annotation_text=f"p{p:g}"
        )
    fig.update_layout(title=f"Monte Carlo ({mc.method}, {mc.final_equity.size} paths)", height=380)
    return fig


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:,.6g}"
    return html.escape(str(value))


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = "".join(
            f'<td class="num">{_fmt(v)}</td>'
            if isinstance(v, int | float)
            else f"<td>{_fmt(v)}</td>"
            for v in record
        )
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def metrics_table(metrics: Mapping[str, float]) -> str:
    """Return the metrics as an HTML table (counts as integers)."""
    values = [
        int(v) if k in INTEGER_METRICS and float(v).is_integer() else float(v)
        for k, v in metrics.items()
    ]
    frame = pd.DataFrame({"metric": list(metrics), "value": pd.Series(values, dtype=object)})
    return f'<div class="metrics">{_table(frame)}</div>'


def glossary(metrics: Mapping[str, float]) -> str:
    """Return the definitions of the figures in ``metrics`` as an HTML list."""
    items = "".join(
        f"<dt>{html.escape(name)}</dt><dd>{html.escape(METRIC_DEFINITIONS[name])}</dd>"
        for name in metrics
        if name in METRIC_DEFINITIONS
    )
    return f'<dl class="note">{items}</dl>'


def summary_note(result: BacktestResult) -> str:
    """Return the run's one-line summary: bars, trades (closed and open), calendar, equity."""
    still_open = sum(1 for t in result.trades if t.is_open)
    closed = len(result.trades) - still_open
    trades = f"{closed} closed trades" + (f" + {still_open} open at the end" if still_open else "")
    calendar = result.calendar
    year = (
        f"; a year is {calendar.periods_per_year:,.6g} bars ({html.escape(calendar.name)})"
        if calendar is not None
        else ""
    )
    return (
        f'<p class="note">{result.bars} bars, {trades}{year}; final equity '
        f"{_fmt(float(result.final_equity))} from {_fmt(float(result.initial_cash))}</p>"
    )


def render_html(
    result: BacktestResult,
    *,
    title: str = "Backtest report",
    search: SearchResult | None = None,
    walk_forward: WalkForwardResult | None = None,
    montecarlo: Sequence[MonteCarloResult] = (),
    csv_name: str | None = None,
    plotly_src: str | None = None,
) -> str:
    """Return the complete report page as a string.

    ``plotly_src`` is the URL of plotly.js (``write_report`` puts the file beside the page); without
    it the 5 MB script is inlined, so the string alone opens anywhere.
    """
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        summary_note(result),
        "<h2>Metrics</h2>",
        metrics_table(result.metrics),
        "<h2>Equity</h2>",
        _div(equity_figure(result), "equity"),
        _div(monthly_heatmap(result.equity), "monthly"),
        "<h2>Trades</h2>",
    ]
    for i, symbol in enumerate(list(result.prices.columns)[:MAX_PRICE_SYMBOLS]):
        sections.append(_div(price_figure(result.prices, result.trades, symbol), f"price{i}"))
    sections += _optional_sections(search, walk_forward, montecarlo)
    sections += _journal(result, csv_name)
    sections += ["<h2>Glossary</h2>", glossary(result.metrics)]
    body = "\n".join(sections)
    plotly_js = script_tag(plotly_src) if plotly_src else f"<script>{get_plotlyjs()}</script>"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{_CSS}</style>{plotly_js}</head>"
        f"<body>{body}</body></html>"
    )


def _optional_sections(
    search: SearchResult | None,
    walk_forward: WalkForwardResult | None,
    montecarlo: Sequence[MonteCarloResult],
) -> list[str]:
    out: list[str] = []
    if search is not None and search.trials:
        best = search.best
        out += ["<h2>Optimisation</h2>", _div(optimisation_figure(search), "optimisation")]
        out.append(f'<p class="note">best {html.escape(str(best.params))}: {_fmt(best.score)}</p>')
    if walk_forward is not None:
        out += ["<h2>Walk-forward</h2>", _div(walk_forward_figure(walk_forward), "walkforward")]
        out.append(_table(walk_forward.params_path()))
    for i, mc in enumerate(montecarlo):
        out += [
            f"<h2>Monte Carlo: {html.escape(mc.method)}</h2>",
            _div(montecarlo_figure(mc), f"mc{i}"),
        ]
        summary = pd.DataFrame(
            {"statistic": list(mc.summary()), "value": list(mc.summary().values())}
        )
        out.append(_table(summary))
    return out


def _journal(result: BacktestResult, csv_name: str | None) -> list[str]:
    frame = trades_frame(result.trades)
    note = f"all {len(frame)} trades in {html.escape(csv_name)}" if csv_name else ""
    if len(frame) > MAX_JOURNAL_ROWS:
        half = MAX_JOURNAL_ROWS // 2
        frame = pd.concat([frame.head(half), frame.tail(half)])
        note = f"first and last {half} of {len(result.trades)} trades; {note}"
    return ["<h2>Trade journal</h2>", f'<p class="note">{note}</p>', _table(frame)]


def write_report(
    result: BacktestResult,
    path: str | Path,
    *,
    title: str = "Backtest report",
    search: SearchResult | None = None,
    walk_forward: WalkForwardResult | None = None,
    montecarlo: Sequence[MonteCarloResult] = (),
) -> ReportFiles:
    """Write the HTML report to ``path`` and the trade journal next to it (``.trades.csv``).

    plotly.js goes beside them once (``plotly-<version>.min.js``), loaded by the page.
    """
    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm"):
        raise BacktestConfigError(f"report path must end in .html, got {target.name!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    csv_path = target.with_suffix(".trades.csv")
    trades_frame(result.trades).to_csv(csv_path, index=False)
    page = render_html(
        result,
        title=title,
        search=search,
        walk_forward=walk_forward,
        montecarlo=montecarlo,
        csv_name=csv_path.name,
        plotly_src=ensure_plotly_beside(target),
    )
    target.write_text(page, encoding="utf-8")
    return ReportFiles(target, csv_path)


__all__ = ["ReportFiles", "monthly_returns", "render_html", "write_report"]
