"""plotly.js written once beside the HTML reports, instead of 5 MB inlined in every report.

A report page loads ``plotly-<version>.min.js`` by a relative URL: the file sits in the report's
folder (copied from the installed ``plotly`` package the first time a report is written there,
never fetched from a CDN), so a report opened from disk works offline, and the web app serves the
same name beside the report's URL (``backtests/<id>/plotly-<version>.min.js``).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import plotly

PLOTLY_VERSION: str = plotly.__version__
SCRIPT_NAME = f"plotly-{PLOTLY_VERSION}.min.js"
# Names a report may reference (reports written under an older plotly keep their own copy).
SCRIPT_NAME_RE = re.compile(r"plotly-[0-9][0-9A-Za-z.+\-]{0,40}\.min\.js")


def plotly_package_dir() -> Path:
    """The installed ``plotly`` package's folder (its plotly.js and templates are data there)."""
    return Path(plotly.__file__).resolve().parent


def plotly_source() -> Path:
    """The minified plotly.js shipped inside the installed ``plotly`` package."""
    return plotly_package_dir() / "package_data" / "plotly.min.js"


def plotly_js_text() -> str:
    """The text of plotly.js, for a page that inlines it."""
    return plotly_source().read_text(encoding="utf-8")


def script_tag(src: str) -> str:
    """A ``<script>`` element loading plotly.js from ``src``."""
    return f'<script src="{src}" charset="utf-8"></script>'


def ensure_plotly_beside(page: str | Path) -> str:
    """Copy plotly.js next to ``page`` unless an identical copy is there; return its relative src.

    The copy goes through a temporary file and an atomic rename, so two reports written into one
    folder at once never leave a half-written script behind.
    """
    source = plotly_source()
    target = Path(page).parent / SCRIPT_NAME
    if not target.is_file() or target.stat().st_size != source.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{SCRIPT_NAME}.{os.getpid()}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return SCRIPT_NAME


__all__ = [
    "PLOTLY_VERSION",
    "SCRIPT_NAME",
    "SCRIPT_NAME_RE",
    "ensure_plotly_beside",
    "plotly_js_text",
    "plotly_package_dir",
    "plotly_source",
    "script_tag",
]
