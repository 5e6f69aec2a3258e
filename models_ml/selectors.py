"""Reads for models_ml."""

from __future__ import annotations
