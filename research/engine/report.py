"""Offline HTML report of a research run (plotly.js beside it, loaded from its folder: offline)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from backtesting.engine.plotly_asset import ensure_plotly_beside, script_tag
from research.engine.findings import StudyOutput, finite

_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}"
    ".sig{background:#e8f5e9}"
)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _findings_table(output: StudyOutput) -> str:
    head = "<tr><th>finding</th><th>statistic</th><th>p (corrected)</th><th>effect</th></tr>"
    rows = [
        f"<tr class='{'sig' if f.significant else ''}'><td>{html.escape(f.title)}</td>"
        f"<td>{_fmt(f.statistic)}</td><td>{_fmt(f.p_value)}</td><td>{_fmt(f.effect_size)}</td></tr>"
        for f in output.findings
    ]
    return f"<table>{head}{''.join(rows)}</table>"


def write_report(output: StudyOutput, path: Path, *, title: str) -> Path:
    """Write the summary, the findings table and every figure of ``output`` to ``path``.

    plotly.js is copied once beside it (``plotly-<version>.min.js``) and loaded by the page.
    """
    divs = "".join(
        fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})
        for fig in output.figures
    )
    summary = html.escape(json.dumps(finite(output.summary), indent=2, default=str))
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style>{script_tag(ensure_plotly_beside(path))}</head><body>"
        f"<h1>{html.escape(title)}</h1><h2>Summary</h2><pre>{summary}</pre>"
        f"<h2>Findings</h2>{_findings_table(output)}<h2>Figures</h2>{divs}</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
