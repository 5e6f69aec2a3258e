"""Reads for backtesting."""

from __future__ import annotations
