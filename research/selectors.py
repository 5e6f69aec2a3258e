"""Reads for research."""

from __future__ import annotations
