"""The ``rebalance`` strategy: hold target weights across symbols, trading only the difference.

Targets come from ``weights`` (``"BTC-USD:0.5,ETH-USD:0.5"``, e.g. printed by
``manage.py optimize``), or are re-optimised every ``reoptimise_every`` bars from the closes seen
so far with ``models_ml.engine.quantum`` (``method``: exact, greedy, anneal, qaoa, vqe, meanvar or
equal). Every order goes through the runner, so risk checks apply as to any strategy.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from marketdata.engine.events import Bar
from trading.engine.constants import DEFAULT_LOT
from trading.engine.errors import StrategyConfigError
from trading.engine.money import ZERO, floor_to_step, to_decimal
from trading.engine.strategies import param_number, param_period, register
from trading.engine.strategy import Strategy, StrategyContext

REOPTIMISE_METHODS = ("exact", "greedy", "anneal", "qaoa", "vqe", "meanvar", "equal")


def parse_weights(text: str | Mapping[str, Any]) -> dict[str, Decimal]:
    """Parse ``"SYM:W,SYM:W"`` (or a mapping) into weights; raise StrategyConfigError if bad."""
    items = text.items() if isinstance(text, Mapping) else _pairs(str(text))
    weights: dict[str, Decimal] = {}
    for symbol, raw in items:
        try:
            weight = to_decimal(raw)
        except (ArithmeticError, ValueError, TypeError):
            raise StrategyConfigError(f"rebalance: weight of {symbol} is not a number") from None
        if not weight.is_finite() or weight < 0:
            raise StrategyConfigError(f"rebalance: weight of {symbol} must be >= 0")
        weights[symbol] = weight
    if sum(weights.values(), ZERO) > 1:
        raise StrategyConfigError("rebalance: weights add up to more than 1")
    return weights


def _pairs(text: str) -> list[tuple[str, str]]:
    """Split ``"A:0.5,B:0.5"`` into pairs."""
    pairs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        symbol, sep, raw = item.rpartition(":")
        if not sep or not symbol:
            raise StrategyConfigError(f"rebalance: expected SYMBOL:WEIGHT, got {item!r}")
        pairs.append((symbol.strip(), raw.strip()))
    return pairs


@register("rebalance")
class Rebalance(Strategy):
    """Move the account to target weights every ``every`` bars when drift exceeds ``band``."""

    default_params = {
        "weights": "",
        "symbols": "",
        "every": 24,
        "band": 0.02,
        "fraction": 0.98,
        "lot": DEFAULT_LOT,
        "reoptimise_every": 0,
        "method": "exact",
        "k": 2,
        "lookback": 168,
        "risk_aversion": 1.0,
        "seed": 0,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        self._targets = parse_weights(p["weights"])
        listed = [s.strip() for s in str(p["symbols"]).split(",") if s.strip()]
        self._universe = tuple(dict.fromkeys([*self._targets, *listed]))
        self._every = param_period(self.name, p, "every", 1)
        self._reoptimise = param_period(self.name, p, "reoptimise_every", 0)
        self._band = to_decimal(param_number(self.name, p, "band"))
        self._fraction = to_decimal(param_number(self.name, p, "fraction"))
        self._lot = to_decimal(p["lot"])
        self._k = param_period(self.name, p, "k", 1)
        self._lookback = param_period(self.name, p, "lookback", 11)
        self._check(p)
        self._seen: dict[datetime, set[str]] = {}
        self._steps = 0

    def _check(self, p: Mapping[str, Any]) -> None:
        """Raise StrategyConfigError on parameters that cannot work together."""
        if not self._universe:
            raise StrategyConfigError("rebalance: give weights or symbols")
        if not (ZERO < self._fraction <= 1) or self._band < 0 or self._lot <= 0:
            raise StrategyConfigError("rebalance: need 0 < fraction <= 1, band >= 0, lot > 0")
        if p["method"] not in REOPTIMISE_METHODS:
            raise StrategyConfigError(
                f"rebalance: method must be one of {', '.join(REOPTIMISE_METHODS)}"
            )
        if self._reoptimise and self._k > len(self._universe):
            raise StrategyConfigError(f"rebalance: k must be <= {len(self._universe)} symbols")
        if not self._reoptimise and not self._targets:
            raise StrategyConfigError("rebalance: without weights, set reoptimise_every > 0")

    @property
    def targets(self) -> dict[str, Decimal]:
        """Return the weights currently held (a copy)."""
        return dict(self._targets)

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        """Act once every symbol of the universe has closed this bar."""
        if bar.symbol not in self._universe:
            return
        seen = self._seen.setdefault(bar.ts, set())
        seen.add(bar.symbol)
        if len(seen) < len(self._universe):
            return
        del self._seen[bar.ts]
        for stale in [ts for ts in self._seen if ts < bar.ts]:
            del self._seen[stale]  # a symbol missed that bar: it will never complete
        self._steps += 1
        if self._reoptimise and self._steps % self._reoptimise == 0:
            self._reoptimise_targets(ctx)
        if (self._steps - 1) % self._every == 0:
            self._trade_to_targets(ctx)

    def _reoptimise_targets(self, ctx: StrategyContext) -> None:
        """Re-solve the portfolio problem on the last ``lookback`` closes of every symbol."""
        closes = [ctx.history(s, self._lookback + 1) for s in self._universe]
        if min(len(c) for c in closes) < self._lookback + 1:
            return  # not enough history yet: keep the current targets
        from models_ml.engine.quantum.allocation import optimal_weights  # qiskit: import late

        weights = optimal_weights(
            self._universe,
            closes,
            method=str(self.params["method"]),
            k=self._k,
            risk_aversion=param_number(self.name, self.params, "risk_aversion"),
            seed=int(self.params["seed"]),
        )
        self._targets = {s: to_decimal(w) for s, w in weights.items()}

    def _trade_to_targets(self, ctx: StrategyContext) -> None:
        """Queue sells before buys so the cash they free pays for the buys."""
        equity = ctx.equity
        if equity <= 0:
            return
        orders: list[tuple[Decimal, str, Decimal]] = []
        for symbol in self._universe:
            price = ctx.price(symbol)
            if price is None or price <= 0:
                continue
            weight = self._targets.get(symbol, ZERO)
            held = ctx.expected_position(symbol)
            drift = abs(held * price / equity - weight * self._fraction)
            if drift <= self._band and not (weight == 0 and held != 0):
                continue
            target = floor_to_step(equity * self._fraction * weight / price, self._lot)
            if target != held:
                orders.append((target - held, symbol, target))
        for _, symbol, target in sorted(orders):
            ctx.target_position(symbol, target, signal="rebalance")
