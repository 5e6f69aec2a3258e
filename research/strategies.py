"""The ``pairs`` strategy: trade the z-score of a cointegrated pair's spread.

Registered in the trading strategy registry (``trading.engine.strategies`` imports this module),
so ``backtest --strategy pairs`` and ``runtrader`` find it. Decisions use only bars up to the
current one: the hedge ratio and the spread's mean and deviation come from the trailing
``lookback`` aligned closes, and the cointegration check from the trailing ``coint_window``.
"""

from __future__ import annotations

import math
from collections import deque
from decimal import Decimal
from typing import Any

import numpy as np

from marketdata.engine.events import Bar
from trading.engine.constants import DEFAULT_LOT
from trading.engine.errors import StrategyConfigError
from trading.engine.money import ZERO, to_decimal
from trading.engine.strategies import register
from trading.engine.strategy import Strategy, StrategyContext


@register("pairs")
class PairsTrading(Strategy):
    """Short the spread above +entry z, long it below -entry, flat inside exit z or on a break.

    The spread is log(A) - beta log(B) - alpha from an OLS fit over ``lookback`` bars; the
    B leg is sized ``beta`` times the A leg's notional. Every ``check_every`` bars an
    Engle-Granger test over ``coint_window`` bars decides whether the pair still cointegrates
    (p <= ``stop_pvalue``); while it does not, positions are closed and none are opened.
    """

    default_params = {
        "symbol_a": "",
        "symbol_b": "",
        "lookback": 100,
        "entry": 2.0,
        "exit": 0.5,
        "stop_pvalue": 0.05,
        "coint_window": 500,
        "check_every": 50,
        "fraction": 0.5,
        "lot": DEFAULT_LOT,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        self._a, self._b = str(p["symbol_a"]), str(p["symbol_b"])
        if not self._a or not self._b or self._a == self._b:
            raise StrategyConfigError("pairs: need two different symbols symbol_a and symbol_b")
        self._entry, self._exit = float(p["entry"]), float(p["exit"])
        if not 0 <= self._exit < self._entry:
            raise StrategyConfigError("pairs: need 0 <= exit < entry")
        self._lookback, self._window = int(p["lookback"]), int(p["coint_window"])
        if not 30 <= self._lookback <= self._window or int(p["check_every"]) < 1:
            raise StrategyConfigError(
                "pairs: need 30 <= lookback <= coint_window and check_every >= 1"
            )
        if not 0 < float(p["stop_pvalue"]) <= 1 or not ZERO < to_decimal(p["fraction"]):
            raise StrategyConfigError("pairs: need 0 < stop_pvalue <= 1 and fraction > 0")
        self._pending: dict[str, tuple[Any, float]] = {}
        self._logs: deque[tuple[float, float]] = deque(maxlen=self._window)
        self._since_check = 0
        self._cointegrated = True
        self.last_z: float = math.nan

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        """Pair the bar with its partner's bar of the same time and act on the spread."""
        if bar.symbol not in (self._a, self._b) or not bar.close > 0:
            return
        self._pending[bar.symbol] = (bar.ts, float(bar.close))
        a, b = self._pending.get(self._a), self._pending.get(self._b)
        if a is None or b is None or a[0] != b[0]:
            return
        self._pending.clear()
        self._logs.append((math.log(a[1]), math.log(b[1])))
        self._check_cointegration()
        if len(self._logs) < self._lookback:
            return
        self._act(ctx, to_decimal(a[1]), to_decimal(b[1]))

    def _check_cointegration(self) -> None:
        self._since_check += 1
        if len(self._logs) < self._window or self._since_check < int(self.params["check_every"]):
            return
        from research.engine.statarb import engle_granger  # statsmodels only when needed

        self._since_check = 0
        arr = np.exp(np.asarray(self._logs))
        p_value = engle_granger(arr[:, 0], arr[:, 1], lags=1).p_value
        self._cointegrated = p_value <= float(self.params["stop_pvalue"])

    def _act(self, ctx: StrategyContext, price_a: Decimal, price_b: Decimal) -> None:
        recent = np.asarray(self._logs)[-self._lookback :]
        design = np.column_stack([recent[:, 1], np.ones(len(recent))])
        (beta, alpha), *_ = np.linalg.lstsq(design, recent[:, 0], rcond=None)
        resid = recent[:, 0] - beta * recent[:, 1] - alpha
        sd = resid.std(ddof=1)
        if not sd > 0 or beta <= 0:
            return
        z = float(resid[-1] / sd)
        self.last_z = z
        held = ctx.expected_position(self._a)
        side = (held > 0) - (held < 0)
        if not self._cointegrated or abs(z) <= self._exit:
            target = 0
        elif abs(z) >= self._entry:
            target = -1 if z > 0 else 1
        else:
            return
        if target != side or (target == 0 and ctx.expected_position(self._b) != 0):
            self._trade(ctx, target, price_a, price_b, float(beta))

    def _trade(self, ctx: StrategyContext, target: int, pa: Decimal, pb: Decimal, beta: float):
        if target == 0:
            ctx.target_position(self._a, ZERO, signal="pairs:flat")
            ctx.target_position(self._b, ZERO, signal="pairs:flat")
            return
        fraction, lot = to_decimal(self.params["fraction"]), to_decimal(self.params["lot"])
        qty_a = ctx.size_for(self._a, fraction, lot, pa)
        qty_b = ctx.size_for(self._b, fraction * to_decimal(beta), lot, pb)
        if not qty_a or not qty_b:
            return
        label = "pairs:long_spread" if target > 0 else "pairs:short_spread"
        ctx.target_position(self._a, qty_a * target, signal=label)
        ctx.target_position(self._b, -qty_b * target, signal=label)
