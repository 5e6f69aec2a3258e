"""Static files of the pages: ``rrr_site/static`` and plotly.js from the installed plotly package.

plotly.js is served as ``vendor/plotly.min.js`` straight from the plotly wheel, so the charts
need no CDN and work offline; ``collectstatic`` copies just that file (not plotly's datasets).
"""

from __future__ import annotations

from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder, FileSystemFinder
from django.core.files.storage import FileSystemStorage

PAGES_STATIC = Path(__file__).resolve().parent.parent / "static"
PLOTLY_DIR = Path(plotly.__file__).resolve().parent / "package_data"
VENDOR_FILES = {"vendor/plotly.min.js": PLOTLY_DIR / "plotly.min.js"}


class PagesStaticFinder(BaseFinder):
    """Find ``rrr/...`` in ``rrr_site/static`` and the vendored plotly.js in its package."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.own = FileSystemStorage(location=str(PAGES_STATIC))
        self.vendor = FileSystemStorage(location=str(PLOTLY_DIR))

    def check(self, **kwargs) -> list:
        """Report nothing: both folders ship with the code."""
        return []

    def find(self, path: str, find_all: bool = False, **kwargs):
        """Return the absolute path of ``path`` (a list of one when ``find_all``), or []."""
        found = VENDOR_FILES.get(path)
        if found is None:
            candidate = (PAGES_STATIC / path).resolve()
            found = candidate if candidate.is_relative_to(PAGES_STATIC) else None
        if found is None or not found.is_file():
            return []
        return [str(found)] if find_all or kwargs.get("all") else str(found)

    def list(self, ignore_patterns):
        """Yield (relative path, storage) of every file for ``collectstatic``."""
        yield from FileSystemFinder.list(self._own_finder(), ignore_patterns)
        for relative, absolute in VENDOR_FILES.items():
            yield absolute.name, _PrefixedStorage(self.vendor, relative)

    def _own_finder(self) -> FileSystemFinder:
        finder = FileSystemFinder.__new__(FileSystemFinder)
        finder.locations = [("", str(PAGES_STATIC))]
        finder.storages = {str(PAGES_STATIC): self.own}
        return finder


class _PrefixedStorage(FileSystemStorage):
    """The plotly package folder, published under ``vendor/`` (collectstatic's prefix)."""

    def __init__(self, storage: FileSystemStorage, relative: str) -> None:
        super().__init__(location=storage.location)
        self.prefix = str(Path(relative).parent)
