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
