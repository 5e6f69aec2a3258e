"""Self-contained HTML backtest reports (viewable offline) and the trade journal as CSV.

The page loads plotly.js from ``plotly-<version>.min.js`` beside it (copied once per folder from the
installed ``plotly`` package, never a CDN; ``render_html`` alone inlines it), followed by the
figures: equity with buy-and-hold and drawdown, monthly returns heatmap, prices with trade
markers, and, when given, optimisation, walk-forward and Monte Carlo charts; the metrics and the
trade journal are HTML tables, and a glossary defines every figure shown. Long curves are
thinned for drawing (metrics use every point).

The figures are written as plotly.js's own JSON (data, layout, config), built here as plain dicts
with numeric arrays as base64 typed arrays, as plotly.py writes them: no plotly.py figure objects,
whose import and property validation cost about a second per 200,000-bar report.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtesting.engine.errors import BacktestConfigError
from backtesting.engine.glossary import INTEGER_METRICS, METRIC_DEFINITIONS
from backtesting.engine.metrics import drawdown_curve
from backtesting.engine.montecarlo import MonteCarloResult
from backtesting.engine.optimize import SearchResult, WalkForwardResult
from backtesting.engine.plotly_asset import (
    ensure_plotly_beside,
    plotly_js_text,
    plotly_package_dir,
    script_tag,
)
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
# ColorBrewer's red-yellow-green (plotly.js has no such named scale; plotly.py's own values).
_RD_YL_GN = [
    "rgb(165,0,38)", "rgb(215,48,39)", "rgb(244,109,67)", "rgb(253,174,97)", "rgb(254,224,139)",
    "rgb(255,255,191)", "rgb(217,239,139)", "rgb(166,217,106)", "rgb(102,189,99)",
    "rgb(26,152,80)", "rgb(0,104,55)",
]  # fmt: skip
_MARGIN = {"l": 50, "r": 20, "t": 40, "b": 40}
_CONFIG = {"displaylogo": False, "responsive": True}

Figure = dict[str, Any]  # plotly.js's {"data": [trace, ...], "layout": {...}}


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


def _numbers(values: Any) -> dict[str, str]:
    """Return a numeric array as plotly.js's typed array (float64, base64), as plotly.py does.

    Compact, exact, and NaN-safe (a gap in a line), unlike a JSON list of numbers.
    """
    array = np.ascontiguousarray(np.asarray(values, dtype=np.float64), dtype="<f8")
    return {"dtype": "f8", "bdata": base64.b64encode(array.tobytes()).decode("ascii")}


def _ms(stamps: Sequence[object] | pd.Index) -> dict[str, str]:
    """UTC epoch milliseconds of timestamps as a typed array (a ``date`` axis reads them)."""
    index = pd.DatetimeIndex(stamps)
    if len(index) == 0:
        return _numbers([])
    index = index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")
    return _numbers(index.asi8 // 1_000_000)


def _cells(table: np.ndarray) -> list[list[float | None]]:
    """Return a small 2-D table as nested lists, NaN as null (a heatmap's empty cell)."""
    return [[None if v != v else float(v) for v in row] for row in table.tolist()]


@cache
def _template() -> dict[str, Any]:
    """Return plotly's ``plotly_white`` template (the package's JSON file, read once)."""
    path = plotly_package_dir() / "package_data" / "templates" / "plotly_white.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _json(value: Any) -> str:
    """Return compact JSON that is safe inside a ``<script>`` element."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _div(fig: Figure, name: str) -> str:
    """Return the figure as a ``<div>`` and the script that draws it into the div."""
    layout = {**fig["layout"], "margin": _MARGIN, "template": _template()}
    height = layout.get("height")
    style = f"height:{int(height)}px; width:100%;" if height else "height:100%; width:100%;"
    return (
        f'<div id="{name}" class="plotly-graph-div" style="{style}"></div>'
        f'<script type="text/javascript">Plotly.newPlot("{name}", {_json(fig["data"])}, '
        f"{_json(layout)}, {_json(_CONFIG)});</script>"
    )


def _line(x: Any, y: Any, name: str, **extra: Any) -> dict[str, Any]:
    """Return a scatter trace (a line unless ``mode`` says otherwise)."""
    return {"type": "scatter", "x": x, "y": y, "name": name, **extra}


def _vline(x: float, xref: str = "x", yref: str = "y") -> dict[str, Any]:
    """Return a dotted vertical line across the plot at ``x`` (a layout shape)."""
    return {
        "type": "line", "x0": x, "x1": x, "xref": xref, "y0": 0, "y1": 1,
        "yref": f"{yref} domain", "line": {"dash": "dot", "width": 1},
    }  # fmt: skip


def equity_figure(result: BacktestResult) -> Figure:
    """Return equity (with buy and hold) above its drawdown."""
    equity = _thin(result.equity)
    data = [_line(_ms(equity.index), _numbers(equity.to_numpy()), "equity")]
    if len(result.benchmark):
        bench = _thin(result.benchmark)
        data.append(
            _line(_ms(bench.index), _numbers(bench.to_numpy()), "buy & hold", line={"dash": "dot"})
        )
    dd = _thin(pd.Series(-drawdown_curve(result.equity.to_numpy()), index=result.equity.index))
    data.append(
        _line(_ms(dd.index), _numbers(dd.to_numpy()), "drawdown", fill="tozeroy",
              xaxis="x2", yaxis="y2")
    )  # fmt: skip
    for trace in data[:-1]:
        trace |= {"xaxis": "x", "yaxis": "y"}
    # Two rows sharing the time axis, 70 % / 30 % of the height (plotly's make_subplots layout).
    layout = {
        "xaxis": {"anchor": "y", "domain": [0.0, 1.0], "matches": "x2", "showticklabels": False,
                  "type": "date"},
        "yaxis": {"anchor": "x", "domain": [0.405, 1.0]},
        "xaxis2": {"anchor": "y2", "domain": [0.0, 1.0], "type": "date"},
        "yaxis2": {"anchor": "x2", "domain": [0.0, 0.255], "tickformat": ".1%"},
        "title": {"text": "Equity and drawdown"},
        "height": 520,
    }  # fmt: skip
    return {"data": data, "layout": layout}


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


def monthly_heatmap(equity: pd.Series) -> Figure:
    """Return the monthly returns heatmap."""
    table = monthly_returns(equity)
    steps = len(_RD_YL_GN) - 1
    trace = {
        "type": "heatmap",
        "z": _cells(table.to_numpy(dtype=float)),
        "x": list(table.columns),
        "y": [str(y) for y in table.index],
        "colorscale": [[i / steps, colour] for i, colour in enumerate(_RD_YL_GN)],
        "zmid": 0,
        "texttemplate": "%{z:.1%}",
    }
    layout = {"title": {"text": "Monthly returns"}, "height": 120 + 40 * max(1, len(table))}
    return {"data": [trace], "layout": layout}


def price_figure(prices: pd.DataFrame, trades: Sequence[RoundTrip], symbol: str) -> Figure:
    """Return the close of ``symbol`` with entry and exit markers of its trades."""
    close = _thin(prices[symbol].dropna())
    data = [_line(_ms(close.index), _numbers(close.to_numpy()), symbol, line={"width": 1})]
    own = [t for t in trades if t.symbol == symbol][-MAX_POINTS:]
    for side, colour, marker in (
        ("long", "green", "triangle-up"),
        ("short", "red", "triangle-down"),
    ):
        entries = [t for t in own if t.side == side]
        data.append(
            _line(
                _ms([t.entry_ts for t in entries]),
                _numbers([float(t.entry_price) for t in entries]),
                f"{side} entry",
                mode="markers",
                marker={"color": colour, "symbol": marker, "size": 8},
            )
        )
    exits = [t for t in own if t.exit_ts is not None]
    data.append(
        _line(
            _ms([t.exit_ts for t in exits]),
            _numbers([float(t.exit_price) for t in exits]),  # type: ignore[arg-type]
            "exit",
            mode="markers",
            marker={"color": "black", "symbol": "x", "size": 7},
        )
    )
    layout = {
        "xaxis": {"type": "date"},
        "title": {"text": f"{symbol}: price and trades"},
        "height": 420,
    }
    return {"data": data, "layout": layout}


def optimisation_figure(search: SearchResult) -> Figure:
    """Return the objective per trial (a heatmap when exactly two parameters vary)."""
    frame = search.to_frame()
    names = [c for c in frame.columns if c in search.trials[0].params] if search.trials else []
    varying = [n for n in names if frame[n].nunique() > 1]
    layout: dict[str, Any] = {}
    if len(varying) == 2:
        table = frame.pivot_table(index=varying[0], columns=varying[1], values="score")
        data: list[dict[str, Any]] = [
            {
                "type": "heatmap",
                "z": _cells(table.to_numpy(dtype=float)),
                "x": [str(c) for c in table.columns],
                "y": [str(i) for i in table.index],
                "colorscale": "Viridis",
            }
        ]
        layout |= {"xaxis": {"title": {"text": varying[1]}},
                   "yaxis": {"title": {"text": varying[0]}}}  # fmt: skip
    else:
        data = [{"type": "scatter", "y": _numbers(frame["score"]), "mode": "markers",
                 "name": "trials"}]  # fmt: skip
        layout["xaxis"] = {"title": {"text": "trial"}}
    if search.generations:
        data.append({"type": "scatter", "y": _numbers(search.generations), "mode": "lines",
                     "name": "best per generation"})  # fmt: skip
    layout |= {"title": {"text": f"{search.method} search: {search.objective}"}, "height": 420}
    return {"data": data, "layout": layout}


def walk_forward_figure(wf: WalkForwardResult) -> Figure:
    """Return the stitched out-of-sample equity with window boundaries."""
    equity = _thin(wf.equity)
    data = [_line(_ms(equity.index), _numbers(equity.to_numpy()), "out-of-sample equity")]
    starts = [o.oos_equity.index[0] for o in wf.windows if len(o.oos_equity)]
    shapes = [_vline(float(pd.Timestamp(ts).value // 1_000_000)) for ts in starts]
    layout = {
        "xaxis": {"type": "date"},
        "shapes": shapes,
        "title": {"text": "Walk-forward: stitched out-of-sample equity"},
        "height": 380,
    }
    return {"data": data, "layout": layout}


def montecarlo_figure(mc: MonteCarloResult) -> Figure:
    """Return histograms of simulated final equity and maximum drawdown."""
    data = [
        {"type": "histogram", "x": _numbers(mc.final_equity), "name": "final equity",
         "nbinsx": 50, "xaxis": "x", "yaxis": "y"},
        {"type": "histogram", "x": _numbers(mc.max_drawdown), "name": "max drawdown",
         "nbinsx": 50, "xaxis": "x2", "yaxis": "y2"},
    ]  # fmt: skip
    titles = [
        {"text": text, "x": x, "y": 1.0, "xref": "paper", "yref": "paper", "xanchor": "center",
         "yanchor": "bottom", "showarrow": False, "font": {"size": 16}}
        for text, x in (("final equity", 0.225), ("max drawdown", 0.775))
    ]  # fmt: skip
    percentiles = mc.final_equity_percentiles().items()
    marks = [
        {"text": f"p{p:g}", "x": float(v), "y": 1, "xref": "x", "yref": "y domain",
         "xanchor": "left", "yanchor": "top", "showarrow": False}
        for p, v in percentiles
    ]  # fmt: skip
    layout = {
        "xaxis": {"anchor": "y", "domain": [0.0, 0.45]},
        "yaxis": {"anchor": "x", "domain": [0.0, 1.0]},
        "xaxis2": {"anchor": "y2", "domain": [0.55, 1.0]},
        "yaxis2": {"anchor": "x2", "domain": [0.0, 1.0]},
        "annotations": titles + marks,
        "shapes": [_vline(float(v)) for _, v in percentiles],
        "title": {"text": f"Monte Carlo ({mc.method}, {mc.final_equity.size} paths)"},
        "height": 380,
    }
    return {"data": data, "layout": layout}


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
    plotly_js = script_tag(plotly_src) if plotly_src else f"<script>{plotly_js_text()}</script>"
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
