"""The folders scanned for users' strategies (set from ``settings.STRATEGY_PATHS`` at start-up).

Kept apart from ``user_strategies`` so that setting them imports nothing else (start-up time).
"""

from __future__ import annotations

from pathlib import Path

PATHS: list[Path] = []


def set_strategy_paths(paths: list) -> None:
    """Set the folders scanned for user strategies."""
    PATHS[:] = [Path(p).expanduser() for p in paths]
