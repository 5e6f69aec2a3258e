"""Built-in strategies and the registry that finds them by name.

Every built-in is O(1) per bar (incremental indicators), keeps its state per symbol, decides on a
bar's close using only closes up to that bar, and trades through ``ctx.target_position``. Sizing
is ``fraction`` of equity at the bar's close, rounded down to ``lot`` (10 % by default, so that
several symbols fit the default position and gross-exposure limits), or what the account's sizing
policy says when the engine runs with one (``risk.engine.sizing.PolicySizer``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import numpy as np

from marketdata.engine.events import Bar
from trading.engine.constants import DEFAULT_LOT
from trading.engine.errors import StrategyConfigError
from trading.engine.indicators import RollingMean, RollingMeanStd, WilderRSI
from trading.engine.money import ZERO, to_decimal
from trading.engine.series import IndicatorCache
from trading.engine.strategy import Prediction, PredictionKind, Strategy, StrategyContext

STRATEGIES: dict[str, type[Strategy]] = {}
_REGISTERED: set[str] = set()  # the built-ins (users' classes join STRATEGIES when loaded)
# Share of equity per position: ten symbols at once fit a gross-exposure limit of 100 %.
DEFAULT_FRACTION = 0.1

S = TypeVar("S", bound=type[Strategy])


def register(name: str) -> Callable[[S], S]:
    """Register a Strategy class under ``name`` (class decorator)."""

    def decorate(cls: S) -> S:
        if name in STRATEGIES and STRATEGIES[name] is not cls:
            raise StrategyConfigError(f"strategy {name!r} is already registered")
        cls.name = name
        STRATEGIES[name] = cls
        _REGISTERED.add(name)
        return cls

    return decorate


def unregister(name: str) -> None:
    """Forget a registered strategy (tests that register a throwaway class)."""
    STRATEGIES.pop(name, None)
    _REGISTERED.discard(name)


def available_strategies() -> list[str]:
    """Return the registered (built-in) strategy names, sorted."""
    return sorted(_REGISTERED)


def resolve_strategy(name: str) -> str:
    """Return the name ``name`` is stored and looked up under, loading a user strategy if need be.

    A registered name is returned as is; ``file.py:ClassName`` becomes its absolute form; a
    class in the strategy folders keeps its name (``trading.engine.user_strategies``). The class
    is then in ``STRATEGIES`` under the returned name. Raise StrategyConfigError if none fits.
    """
    from trading.engine import user_strategies as user

    name = str(name).strip()
    if name in _REGISTERED:
        return name
    # Users' files are looked at again each time (re-imported only when changed): a name must
    # not keep a class from a file since edited or removed.
    if user.is_path_spec(name):
        key, cls = user.load_spec(name)
    else:
        found = user.find(name)
        kept = STRATEGIES.get(name)
        if found is None and kept is not None and not kept.__module__.startswith(user.PREFIX):
            return name  # put there by code (not a file), e.g. a test's class
        if found is None:
            known = ", ".join(available_strategies())
            folders = ", ".join(str(p) for p in user.strategy_paths()) or "none"
            raise StrategyConfigError(
                f"unknown strategy {name!r}; built-in: {known}; strategy folders: {folders};"
                " or give path/to/file.py:ClassName"
            )
        key, cls = name, found[1]
    if "name" not in vars(cls):
        cls.name = user.display_name(cls)  # what orders and messages call it (short)
    STRATEGIES[key] = cls
    return key


def strategy_class(name: str) -> type[Strategy]:
    """Return the class of strategy ``name`` (registered, in a strategy folder, or a path)."""
    return STRATEGIES[resolve_strategy(name)]


def create_strategy(name: str, **params: Any) -> Strategy:
    """Instantiate strategy ``name`` (see ``resolve_strategy``) with ``params``."""
    return strategy_class(name)(**params)


def param_number(strategy: str, params: Mapping[str, Any], name: str) -> float:
    """Return parameter ``name`` as a finite float, or raise StrategyConfigError."""
    value = params[name]
    if isinstance(value, bool | np.bool_):
        raise StrategyConfigError(f"{strategy}: {name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StrategyConfigError(f"{strategy}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise StrategyConfigError(f"{strategy}: {name} must be finite, got {value!r}")
    return number


def param_period(strategy: str, params: Mapping[str, Any], name: str, minimum: int) -> int:
    """Return parameter ``name`` as a whole number >= ``minimum``, or raise."""
    number = param_number(strategy, params, name)
    if not number.is_integer():
        raise StrategyConfigError(
            f"{strategy}: {name} must be a whole number, got {params[name]!r}"
        )
    if number < minimum:
        raise StrategyConfigError(f"{strategy}: {name} must be >= {minimum}, got {params[name]!r}")
    return int(number)


def param_flag(strategy: str, params: Mapping[str, Any], name: str) -> bool:
    """Return parameter ``name`` as a bool (true/false, 1/0), or raise StrategyConfigError."""
    value = params[name]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    # A grid from the command line gives strings; "false" must not be taken as truthy.
    text = str(value).strip().lower()
    if isinstance(value, int | str) and text in {"true", "false", "1", "0"}:
        return text in {"true", "1"}
    raise StrategyConfigError(f"{strategy}: {name} must be true or false, got {value!r}")


class _TargetStrategy(Strategy):
    """Shared plumbing: per-symbol desired direction (-1, 0, +1) turned into a target size."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if not param_number(self.name, self.params, "fraction") > 0:
            raise StrategyConfigError(f"{self.name}: fraction must be positive")
        if not param_number(self.name, self.params, "lot") > 0:
            raise StrategyConfigError(f"{self.name}: lot must be positive")
        self._fraction = to_decimal(self.params["fraction"])
        self._lot = to_decimal(self.params["lot"])

    @staticmethod
    def _held(ctx: StrategyContext, symbol: str) -> int:
        """Return the sign of the position once open orders complete."""
        expected = ctx.expected_position(symbol)
        return (expected > 0) - (expected < 0)

    def _go(
        self,
        ctx: StrategyContext,
        symbol: str,
        direction: int,
        price: Decimal,
        held: int | None = None,
    ) -> float | None:
        """Move towards ``direction`` from ``held`` (default: what ``_held`` says); if an
        entry sized to nothing, return the highest price at which the same equity buys one lot
        (see ``Strategy.on_decision``)."""
        # Compare with the book, not a remembered state, so a rejected order is retried.
        if (self._held(ctx, symbol) if held is None else held) == direction:
            return None
        if direction == 0:
            ctx.target_position(symbol, ZERO, signal=f"{self.name}:flat")
            return None
        size = ctx.size_for(symbol, self._fraction, self._lot, price)
        side = "long" if direction > 0 else "short"
        ctx.target_position(symbol, size * direction, signal=f"{self.name}:{side}")
        return None if size else float(ctx.equity * self._fraction / self._lot)

    def on_decision(self, bar: Bar, choices: Sequence[float], ctx: StrategyContext) -> float | None:
        """Go where the decision table's row for the held direction says (NaN: stay)."""
        held = self._held(ctx, bar.symbol)
        direction = choices[held + 1]
        if direction != direction:
            return None
        return self._go(ctx, bar.symbol, int(direction), to_decimal(bar.close), held)

    @staticmethod
    def _same_for_every_holding(directions: np.ndarray) -> np.ndarray:
        return np.tile(directions, (3, 1))


@register("sma_cross")
class SmaCross(_TargetStrategy):
    """Long while the fast SMA is above the slow SMA; flat (or short) while below."""

    default_params = {
        "fast": 10,
        "slow": 30,
        "fraction": DEFAULT_FRACTION,
        "allow_short": False,
        "lot": DEFAULT_LOT,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        fast = param_period(self.name, self.params, "fast", 1)
        slow = param_period(self.name, self.params, "slow", 2)
        if not fast < slow:
            raise StrategyConfigError(f"sma_cross: need 0 < fast < slow, got {fast} and {slow}")
        self.params.update(
            fast=fast, slow=slow, allow_short=param_flag(self.name, self.params, "allow_short")
        )
        self._fast_n, self._slow_n = fast, slow
        self._sma: dict[str, tuple[RollingMean, RollingMean]] = {}

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        """Update both averages and follow their order."""
        pair = self._sma.get(bar.symbol)
        if pair is None:
            pair = self._sma[bar.symbol] = (RollingMean(self._fast_n), RollingMean(self._slow_n))
        fast = pair[0].update(bar.close)
        slow = pair[1].update(bar.close)
        if fast is None or slow is None or fast == slow:
            return
        short = -1 if self.params["allow_short"] else 0
        self._go(ctx, bar.symbol, 1 if fast > slow else short, to_decimal(bar.close))

    def decision_table(self, series: IndicatorCache) -> np.ndarray:
        """Return ``on_bar``'s directions: the order of the two averages, whatever is held."""
        fast, slow = series.sma(self._fast_n), series.sma(self._slow_n)
        short = -1.0 if self.params["allow_short"] else 0.0
        with np.errstate(invalid="ignore"):
            wanted = np.where(fast > slow, 1.0, np.where(fast < slow, short, np.nan))
        return self._same_for_every_holding(wanted)


@register("rsi_reversion")
class RsiReversion(_TargetStrategy):
    """Buy when RSI (Wilder) falls below ``lower``; exit when it rises above ``upper``."""

    default_params = {
        "period": 14,
        "lower": 30.0,
        "upper": 70.0,
        "fraction": DEFAULT_FRACTION,
        "lot": DEFAULT_LOT,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        period = param_period(self.name, self.params, "period", 1)  # Wilder's RSI needs >= 1
        lower = param_number(self.name, self.params, "lower")
        upper = param_number(self.name, self.params, "upper")
        if not 0 < lower < upper < 100:
            raise StrategyConfigError(
                f"rsi_reversion: need 0 < lower < upper < 100, got {lower:g} and {upper:g}"
            )
        self.params.update(period=period, lower=lower, upper=upper)
        self._rsi: dict[str, WilderRSI] = {}

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        """Update the RSI and act on the thresholds."""
        rsi = self._rsi.get(bar.symbol)
        if rsi is None:
            rsi = self._rsi[bar.symbol] = WilderRSI(int(self.params["period"]))
        value = rsi.update(bar.close)
        if value is None:
            return
        if value < self.params["lower"]:
            self._go(ctx, bar.symbol, 1, to_decimal(bar.close))
        elif value > self.params["upper"]:
            self._go(ctx, bar.symbol, 0, to_decimal(bar.close))

    def decision_table(self, series: IndicatorCache) -> np.ndarray:
        """Return ``on_bar``'s directions: long below ``lower``, flat above ``upper``."""
        rsi = series.rsi(int(self.params["period"]))
        lower, upper = float(self.params["lower"]), float(self.params["upper"])
        with np.errstate(invalid="ignore"):
            wanted = np.where(rsi < lower, 1.0, np.where(rsi > upper, 0.0, np.nan))
        return self._same_for_every_holding(wanted)


@register("bollinger_breakout")
class BollingerBreakout(_TargetStrategy):
    """Go long on a close above the upper band (short below the lower); exit at the middle."""

    default_params = {
        "period": 20,
        "k": 2.0,
        "fraction": DEFAULT_FRACTION,
        "allow_short": False,
        "lot": DEFAULT_LOT,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        period = param_period(self.name, self.params, "period", 2)  # a deviation needs 2 closes
        k = param_number(self.name, self.params, "k")
        if k <= 0:
            raise StrategyConfigError(f"bollinger_breakout: need k > 0, got {k:g}")
        allow_short = param_flag(self.name, self.params, "allow_short")
        self.params.update(period=period, k=k, allow_short=allow_short)
        self._bands: dict[str, RollingMeanStd] = {}

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        """Update the bands and act on breakouts and mean reversion."""
        bands = self._bands.get(bar.symbol)
        if bands is None:
            bands = self._bands[bar.symbol] = RollingMeanStd(int(self.params["period"]))
        stats = bands.update(bar.close)
        if stats is None:
            return
        mean, std = stats
        width = float(self.params["k"]) * std
        close = bar.close
        held = self._held(ctx, bar.symbol)
        if close > mean + width:
            direction = 1
        elif close < mean - width and self.params["allow_short"]:
            direction = -1
        elif (held > 0 and close < mean) or (held < 0 and close > mean):
            direction = 0
        else:
            return
        self._go(ctx, bar.symbol, direction, to_decimal(close))

    def decision_table(self, series: IndicatorCache) -> np.ndarray:
        """Return ``on_bar``'s directions; exits at the middle depend on the side held."""
        mean, std = series.bands(int(self.params["period"]))
        close = series.close
        width = float(self.params["k"]) * std
        with np.errstate(invalid="ignore"):
            down = (close < mean - width) & bool(self.params["allow_short"])
            entry = np.where(close > mean + width, 1.0, np.where(down, -1.0, np.nan))
            idle = np.isnan(entry)
            return np.stack(
                [
                    np.where(idle & (close > mean), 0.0, entry),  # short: exit above the mean
                    entry,
                    np.where(idle & (close < mean), 0.0, entry),  # long: exit below the mean
                ]
            )


@register("model_signal")
class ModelSignal(_TargetStrategy):
    """Follow direction predictions: long above ``threshold``, flat below ``1 - threshold``."""

    default_params = {
        "threshold": 0.55,
        "fraction": DEFAULT_FRACTION,
        "min_confidence": 0.0,
        "lot": DEFAULT_LOT,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        threshold = param_number(self.name, self.params, "threshold")
        if not 0.5 <= threshold < 1:
            raise StrategyConfigError(
                f"model_signal: threshold must be in [0.5, 1), got {threshold:g}"
            )
        min_confidence = param_number(self.name, self.params, "min_confidence")
        if not 0 <= min_confidence <= 1:
            raise StrategyConfigError(
                f"model_signal: min_confidence must be in [0, 1], got {min_confidence:g}"
            )
        self.params.update(threshold=threshold, min_confidence=min_confidence)

    def on_prediction(self, prediction: Prediction, ctx: StrategyContext) -> None:
        """Act on a direction probability."""
        if prediction.kind is not PredictionKind.DIRECTION:
            return
        if prediction.confidence < float(self.params["min_confidence"]):
            return
        threshold = float(self.params["threshold"])
        price = ctx.price(prediction.symbol)
        if price is None:
            return
        if prediction.value > threshold:
            self._go(ctx, prediction.symbol, 1, price)
        elif prediction.value < 1 - threshold:
            self._go(ctx, prediction.symbol, 0, price)


import research.strategies  # noqa: E402, F401 - registers "pairs" (research owns it)
import trading.engine.signals  # noqa: E402, F401 - registers "tradingview_signal"
import trading.engine.strategy_rebalance  # noqa: E402, F401 - registers "rebalance"
