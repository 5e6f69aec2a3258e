"""Declared strategy parameters: a type, a default and the range the optimisers search.

A strategy (either style) may declare ``parameters = {"fast": IntParam(10, 5, 30, step=5),
"k": FloatParam(2.0, 1.0, 3.0), "side": ChoiceParam("long", ("long", "both"))}``. The defaults
become its ``default_params``; a value given outside the type or range is refused with a clear
``StrategyConfigError``; and a sweep without ``--space`` searches these ranges
(``backtesting.services.parse_space``). Pure: no Django.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trading.engine.errors import StrategyConfigError


@dataclass(frozen=True, slots=True)
class IntParam:
    """A whole number in [``low``, ``high``]; a grid steps by ``step``."""

    default: int
    low: int
    high: int
    step: int = 1

    def check(self, strategy: str, name: str, value: Any) -> int:
        """Return ``value`` as an int in range, or raise StrategyConfigError."""
        number = _number(strategy, name, value)
        if not float(number).is_integer():
            raise StrategyConfigError(f"{strategy}: {name} must be a whole number, got {value!r}")
        if not self.low <= number <= self.high:
            raise StrategyConfigError(
                f"{strategy}: {name} must be in {self.low}..{self.high}, got {value!r}"
            )
        return int(number)

    def kind(self) -> str:
        return f"int {self.low}..{self.high} step {self.step}"


@dataclass(frozen=True, slots=True)
class FloatParam:
    """A number in [``low``, ``high``]; a grid uses ``num`` evenly spaced points."""

    default: float
    low: float
    high: float
    num: int = 5

    def check(self, strategy: str, name: str, value: Any) -> float:
        """Return ``value`` as a float in range, or raise StrategyConfigError."""
        number = float(_number(strategy, name, value))
        if not self.low <= number <= self.high:
            raise StrategyConfigError(
                f"{strategy}: {name} must be in {self.low:g}..{self.high:g}, got {value!r}"
            )
        return number

    def kind(self) -> str:
        return f"float {self.low:g}..{self.high:g} ({self.num} grid points)"


@dataclass(frozen=True, slots=True)
class ChoiceParam:
    """One of ``options``."""

    default: Any
    options: tuple[Any, ...]

    def check(self, strategy: str, name: str, value: Any) -> Any:
        """Return the option equal to ``value`` (also given as text), or raise."""
        for option in self.options:
            if value == option or str(value) == str(option):
                return option
        choices = ", ".join(map(str, self.options))
        raise StrategyConfigError(f"{strategy}: {name} must be one of {choices}, got {value!r}")

    def kind(self) -> str:
        return "one of " + ", ".join(map(str, self.options))


Param = IntParam | FloatParam | ChoiceParam


def _number(strategy: str, name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise StrategyConfigError(f"{strategy}: {name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StrategyConfigError(f"{strategy}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise StrategyConfigError(f"{strategy}: {name} must be finite, got {value!r}")
    return number


def checked(strategy: str, declared: Mapping[str, Param], params: dict[str, Any]) -> None:
    """Replace every declared parameter in ``params`` by its checked value (in place)."""
    for name, param in declared.items():
        if name in params:
            params[name] = param.check(strategy, name, params[name])


def search_space(declared: Mapping[str, Param]) -> dict[str, Any]:
    """Return the optimisers' space (``backtesting.engine.optimize`` dimensions)."""
    from backtesting.engine.optimize import Choice, FloatRange, IntRange

    space: dict[str, Any] = {}
    for name, p in declared.items():
        if isinstance(p, IntParam):
            space[name] = IntRange(p.low, p.high, p.step)
        elif isinstance(p, FloatParam):
            space[name] = FloatRange(float(p.low), float(p.high), p.num)
        else:
            space[name] = Choice(tuple(p.options))
    return space
