"""Report files named from user data (account names, run names) stay inside ``REPORTS_DIR``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.conf import settings
from django.utils.text import slugify

MAX_SLUG = 100  # well under any file-name limit, prefix, hash and suffix included


class ReportPathError(ValueError):
    """A report path built from user data would leave the reports folder."""


def report_path_in_reports_dir(prefix: str, name: str, suffix: str) -> Path:
    """Return ``REPORTS_DIR/<prefix><slug of name><suffix>``; refuse any path outside the folder.

    ``prefix`` and ``suffix`` come from code; ``name`` may come from anyone.
    """
    slug = slugify(name)[:MAX_SLUG] or "unnamed"
    if slug != name:
        # Sanitising can map two names to one slug ("Paper", "paper"); the hash keeps them apart.
        slug = f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    root = Path(settings.REPORTS_DIR).resolve()
    path = (root / f"{prefix}{slug}{suffix}").resolve()
    # Resolving follows symlinks already in the folder; the check is what keeps it confined.
    if path.parent != root:
        raise ReportPathError(f"report path {path} is outside {root}")
    return path


def report_script_path(report_path: str, name: str) -> Path | None:
    """The plotly.js file ``name`` beside the report at ``report_path``, or None.

    Only a ``plotly-<version>.min.js`` name is served, only from the report's own folder and only
    inside ``REPORTS_DIR``; a report written before the file was put beside it gets the installed
    package's copy when the versions agree.
    """
    from backtesting.engine.plotly_asset import SCRIPT_NAME, SCRIPT_NAME_RE, plotly_source

    if not report_path or not SCRIPT_NAME_RE.fullmatch(name):
        return None
    root = Path(settings.REPORTS_DIR).resolve()
    path = (Path(report_path).resolve().parent / name).resolve()
    if path.is_relative_to(root) and path.is_file():
        return path
    return plotly_source() if name == SCRIPT_NAME else None
