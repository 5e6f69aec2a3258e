"""Strategies named over the API: by name only, never by a file path on the server.

``backtest``/``runtrader``/``research`` on the command line (the operator) may name any
``path/to/file.py:ClassName``; resolving one imports that file. Over HTTP that let any trader make
the web process (or a worker) import, and so execute, any ``.py`` file on the host, and the
error told whether a file existed. The API takes a built-in name or a class in ``STRATEGY_PATHS``
(folders the operator chose), checked before anything is imported.
"""

from __future__ import annotations

import re

from rest_framework import serializers

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def strategy_name_check(value: str) -> str:
    """Return ``value`` if it is a strategy name; raise a field error for a path or other text."""
    if not NAME.fullmatch(value):
        raise serializers.ValidationError(
            "name a built-in strategy or a class in STRATEGY_PATHS (letters, digits, _); "
            "file paths are accepted from the command line only"
        )
    return value
