"""Shared model pieces of the simulated market: symbol resolution, correlations, regimes.

Used by both the event simulator (``simulator``) and the vectorised history generator
(``history``), so live events and historical bars follow the same statistical model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np

from marketdata.engine.constants import (
    DEFAULT_CORRELATIONS,
    DEFAULT_SYMBOLS,
    DEFAULT_SYMBOLS_BY_NAME,
    FALLBACK_CORRELATION,
    JUMP_SIZE_HOURLY_SIGMAS,
    JUMPS_PER_DAY,
    REGIME_MEAN_DURATION_S,
    SECONDS_PER_YEAR,
    SymbolSpec,
)
from marketdata.engine.errors import SimulationConfigError


def resolve_specs(symbols: Sequence[str | SymbolSpec] | None) -> tuple[SymbolSpec, ...]:
    """Turn symbol names (defaults only) or explicit specs into a tuple of specs."""
    if symbols is None:
        return DEFAULT_SYMBOLS
    specs: list[SymbolSpec] = []
    for item in symbols:
        if isinstance(item, SymbolSpec):
            specs.append(item)
        elif item in DEFAULT_SYMBOLS_BY_NAME:
            specs.append(DEFAULT_SYMBOLS_BY_NAME[item])
        else:
            raise SimulationConfigError(f"unknown symbol {item!r}: pass a SymbolSpec for it")
    names = [s.symbol for s in specs]
    if not specs or len(set(names)) != len(names):
        raise SimulationConfigError(f"symbols must be non-empty and unique, got {names}")
    for spec in specs:
        if min(spec.base_price, spec.tick_size, spec.lot_size, spec.annual_vol) <= 0:
            raise SimulationConfigError(f"{spec.symbol}: prices, sizes and vol must be positive")
    return tuple(specs)


def correlation_matrix(
    specs: Sequence[SymbolSpec], overrides: dict[frozenset[str], float] | None = None
) -> np.ndarray:
    """Build the return correlation matrix of specs from defaults plus overrides."""
    table = {**DEFAULT_CORRELATIONS, **(overrides or {})}
    n = len(specs)
    corr = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            pair = frozenset({specs[i].symbol, specs[j].symbol})
            corr[i, j] = corr[j, i] = table.get(pair, FALLBACK_CORRELATION)
    return corr


def cholesky(corr: np.ndarray) -> np.ndarray:
    """Return the lower Cholesky factor, or raise SimulationConfigError if not positive definite."""
    try:
        return np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        raise SimulationConfigError("correlation matrix is not positive definite") from None


def decimals_of(increment: float) -> int:
    """Return the number of decimals of a tick or lot size (0.01 -> 2)."""
    return max(0, -int(Decimal(str(increment)).normalize().as_tuple().exponent))


def round_to(values: np.ndarray, increment: float) -> np.ndarray:
    """Round values to a multiple of increment without binary noise (50000.01, not ...0002)."""
    return np.round(np.round(values / increment) * increment, decimals_of(increment))


@dataclass(frozen=True, slots=True)
class CointegratedPair:
    """A planted cointegrated pair: the follower's log price tracks the leader's.

    log follower = log base + ``beta`` (log leader - leader's log base) + spread, the spread an
    Ornstein-Uhlenbeck process with ``half_life`` seconds and stationary std ``spread_sigma``
    (log units). The follower's own random walk is replaced, so the spread mean-reverts.
    """

    follower: str
    leader: str
    beta: float = 1.0
    half_life: float = 6 * 3600.0
    spread_sigma: float = 0.01

    def decay(self, seconds: float) -> float:
        """Return how much of the spread is left after ``seconds``."""
        return 0.5 ** (seconds / self.half_life)


PlantedPair = tuple[int, int, CointegratedPair]  # follower index, leader index, the pair


@dataclass(frozen=True, slots=True)
class FlowImpact:
    """A planted permanent price impact of order flow on one symbol (live stream only).

    Each step's net aggressor size (buys - sells, base units) moves the symbol's mid by
    ``coefficient`` quote units per unit from the next step on: Kyle's lambda by construction.
    The symbol's aggressor sides then lean only on sentiment (not on the step's return), so
    the flow is exogenous and an impact regression can recover ``coefficient`` itself.
    """

    symbol: str
    coefficient: float


PlantedImpact = tuple[int, FlowImpact]  # symbol index, the impact


def resolve_impacts(
    specs: Sequence[SymbolSpec], impacts: Sequence[FlowImpact]
) -> tuple[PlantedImpact, ...]:
    """Return the planted impacts by model index; raise SimulationConfigError if unusable."""
    names = [s.symbol for s in specs]
    seen = [i.symbol for i in impacts]
    if len(set(seen)) != len(seen):
        raise SimulationConfigError("a symbol can have only one planted flow impact")
    out = []
    for impact in impacts:
        if impact.symbol not in names:
            raise SimulationConfigError(f"flow impact {impact} names a symbol not simulated")
        if not (math.isfinite(impact.coefficient) and impact.coefficient > 0):
            raise SimulationConfigError("flow impact: coefficient must be a finite number > 0")
        out.append((names.index(impact.symbol), impact))
    return tuple(out)


def resolve_pairs(
    specs: Sequence[SymbolSpec], pairs: Sequence[CointegratedPair]
) -> tuple[PlantedPair, ...]:
    """Return the planted pairs by model index; raise SimulationConfigError if they cannot work."""
    names = [s.symbol for s in specs]
    followers = [p.follower for p in pairs]
    out = []
    for pair in pairs:
        if pair.follower not in names or pair.leader not in names:
            raise SimulationConfigError(f"cointegrated pair {pair} names a symbol not simulated")
        if pair.follower == pair.leader or pair.leader in followers:
            raise SimulationConfigError("a cointegrated pair's leader must follow no one else")
        if not min(pair.beta, pair.half_life, pair.spread_sigma) > 0:
            raise SimulationConfigError("cointegrated pair: beta, half_life, spread_sigma > 0")
        out.append((names.index(pair.follower), names.index(pair.leader), pair))
    if len(set(followers)) != len(followers):
        raise SimulationConfigError("a symbol can follow only one leader")
    return tuple(out)


def ou_path(
    rng: np.random.Generator, n: int, decay: float, sigma: float, start: float
) -> np.ndarray:
    """Return the next ``n`` values of an OU process (stationary std ``sigma``) after ``start``."""
    shocks = rng.standard_normal(n) * sigma * math.sqrt(1.0 - decay * decay)
    path = np.empty(n)
    x = start
    for j in range(n):  # recursive by nature; chunks and blocks keep n in the thousands
        x = x * decay + shocks[j]
        path[j] = x
    return path


@dataclass(frozen=True, slots=True)
class MarketProfile:
    """Everything that determines a simulated market's statistics, fixed at construction."""

    specs: tuple[SymbolSpec, ...]
    seed: int
    anchor: datetime  # prices equal base prices here
    step_seconds: float
    trades_per_step: float
    chol: np.ndarray
    pairs: tuple[PlantedPair, ...] = ()
    impacts: tuple[PlantedImpact, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Return the symbol names in model order."""
        return tuple(s.symbol for s in self.specs)

    def sigma(self, seconds: float) -> np.ndarray:
        """Return each symbol's base (calm-regime-free) log-return std over an interval."""
        annual = np.array([s.annual_vol for s in self.specs])
        return annual * math.sqrt(seconds / SECONDS_PER_YEAR)

    def jump_probability(self, seconds: float) -> float:
        """Return the probability of a market-wide jump within an interval."""
        return 1.0 - math.exp(-JUMPS_PER_DAY * seconds / 86_400.0)

    def jump_sigma(self) -> np.ndarray:
        """Return each symbol's jump size standard deviation (log return)."""
        return JUMP_SIZE_HOURLY_SIGMAS * self.sigma(3600.0)

    def plant(self, log_prices: np.ndarray, spreads: np.ndarray) -> None:
        """Rewrite each follower's column of ``log_prices`` (rows x symbols) from its leader's."""
        for idx, (f, lead, pair) in enumerate(self.pairs):
            base_f = math.log(self.specs[f].base_price)
            leader = log_prices[:, lead] - math.log(self.specs[lead].base_price)
            log_prices[:, f] = base_f + pair.beta * leader + spreads[:, idx]


def regime_switch_probabilities(seconds: float) -> tuple[float, float]:
    """Return the probability of leaving the calm and the stressed regime within an interval."""
    calm, stressed = REGIME_MEAN_DURATION_S
    return 1.0 - math.exp(-seconds / calm), 1.0 - math.exp(-seconds / stressed)


def stationary_regime(rng: np.random.Generator, seconds: float) -> int:
    """Draw a regime from the chain's stationary distribution."""
    p_leave_calm, p_leave_stress = regime_switch_probabilities(seconds)
    share_stressed = p_leave_calm / (p_leave_calm + p_leave_stress)
    return int(rng.random() < share_stressed)


def regime_path(rng: np.random.Generator, n: int, seconds: float, state: int) -> np.ndarray:
    """Simulate n steps of the two-state Markov regime chain that was in ``state`` just before.

    Segment lengths are geometric (the chain is memoryless), drawn in bulk so long paths stay
    vectorised; the first segment may be empty (a switch on the very first step).
    """
    probs = regime_switch_probabilities(seconds)
    lengths: list[np.ndarray] = []
    states: list[np.ndarray] = []
    covered = 0
    first = True
    while covered < n:
        batch = 64
        seg_states = (state + np.arange(batch)) % 2
        seg_p = np.where(seg_states == 0, probs[0], probs[1])
        seg_len = rng.geometric(seg_p)
        if first:
            seg_len[0] -= 1
            first = False
        lengths.append(seg_len)
        states.append(seg_states)
        covered += int(seg_len.sum())
        state = int((state + batch) % 2)
    path = np.repeat(np.concatenate(states), np.concatenate(lengths))
    return path[:n].astype(np.int8)
