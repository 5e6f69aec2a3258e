"""Errors raised by the research engine."""

from __future__ import annotations


class ResearchInputError(ValueError):
    """The data or parameters given to a study cannot produce a meaningful answer."""
