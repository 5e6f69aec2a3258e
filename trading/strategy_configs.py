"""What a ``StrategyConfig`` row must hold to be loaded by ``backtest``/``runtrader --config``.

The admin edits its JSON fields as free text, so a row could hold a list of parameters, one
symbol as a string (read letter by letter: "B, T, C, -, ..."), numbers for symbols, or null. The
admin refuses such a row with the field named (``StrategyConfig.clean``), and the commands
refuse one stored otherwise (a shell, a fixture, an older version) with the same words instead
of a traceback.
"""

from __future__ import annotations

import re
from typing import Any

SYMBOL_NAME = re.compile(r"^[A-Z0-9][A-Z0-9._/-]{0,31}$")  # as ``backtest --symbols`` accepts


def strategy_config_problems(strategy_class: Any, params: Any, symbols: Any) -> dict[str, str]:
    """Return ``{field: problem}`` for the row's fields that cannot be loaded (empty: fine)."""
    problems: dict[str, str] = {}
    if not isinstance(strategy_class, str) or not strategy_class.strip():
        problems["strategy_class"] = (
            "name a strategy: a built-in, a class in STRATEGY_PATHS or /path/file.py:ClassName"
        )
    if not isinstance(params, dict):
        problems["params"] = (
            f'a JSON object of parameter names and values, e.g. {{"fast": 10}}; got {_kind(params)}'
        )
    elif any(not isinstance(key, str) or not key for key in params):
        problems["params"] = "parameter names must be non-empty text"
    if not isinstance(symbols, list):
        problems["symbols"] = f'a JSON list of symbol names, e.g. ["BTC-USD"]; got {_kind(symbols)}'
    else:
        bad = [s for s in symbols if not isinstance(s, str) or not SYMBOL_NAME.match(s.upper())]
        if bad:
            problems["symbols"] = (
                f"{str(bad[0])[:40]!r} is not a symbol name (letters, digits, -._/, at most 32)"
            )
        elif len({s.upper() for s in symbols}) != len(symbols):
            problems["symbols"] = "a symbol is listed twice"
    return problems


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "other")


def strategy_config_check(strategy_class: str, params: dict[str, Any]) -> dict[str, str]:
    """Return ``{field: problem}`` if the strategy is unknown or refuses ``params``.

    A strategy given by file path is not imported here (the admin's process would run that
    file): ``backtest``/``runtrader`` check it when they load it.
    """
    from trading.engine import user_strategies
    from trading.engine.errors import StrategyConfigError
    from trading.engine.strategies import create_strategy, resolve_strategy

    name = strategy_class.strip()
    if user_strategies.is_path_spec(name):
        return {}
    try:
        resolved = resolve_strategy(name)
    except StrategyConfigError as exc:
        return {"strategy_class": str(exc)}
    try:
        create_strategy(resolved, **params)
    except (StrategyConfigError, TypeError, ValueError, ArithmeticError) as exc:
        return {"params": str(exc) or type(exc).__name__}
    return {}
