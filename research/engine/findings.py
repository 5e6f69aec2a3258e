"""What a study returns: findings and figures, free of the ORM."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go


@dataclass(slots=True)
class FindingData:
    """One result: its statistic, p-value (after correction where several were tested)."""

    title: str
    statistic: float | None = None
    p_value: float | None = None
    effect_size: float | None = None
    significant: bool = False
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StudyOutput:
    """Everything a study produced: a summary, its findings and the figures of its report."""

    summary: dict[str, Any] = field(default_factory=dict)
    findings: list[FindingData] = field(default_factory=list)
    figures: list[go.Figure] = field(default_factory=list)


def finite(value: Any) -> Any:
    """Return ``value`` with every NaN/inf float (nested too) replaced by None (valid JSON)."""
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
