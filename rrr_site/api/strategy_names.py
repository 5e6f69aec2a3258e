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
    """Return ``value`` if it names a strategy; raise a field error for a path, other text, or a
    name no strategy has (told without the server's folders and files: the command line's
    message names them, and suggests a file path, which the API refuses)."""
    from trading.engine.errors import StrategyConfigError
    from trading.engine.strategies import available_strategies, resolve_strategy

    if not NAME.fullmatch(value):
        raise serializers.ValidationError(
            "name a built-in strategy or a class in STRATEGY_PATHS (letters, digits, _); "
            "file paths are accepted from the command line only"
        )
    try:
        resolve_strategy(value)
    except StrategyConfigError as exc:
        if "defined more than once" in str(exc):
            problem = f"strategy {value!r} is defined more than once in the strategy folders"
        else:
            built_in = ", ".join(available_strategies())
            problem = (
                f"unknown strategy {value!r}; built-in: {built_in}; or a class in the server's "
                "strategy folders (STRATEGY_PATHS)"
            )
        raise serializers.ValidationError(
            f"{problem}; `manage.py strategy list` on the server lists them"
        ) from None
    return value
