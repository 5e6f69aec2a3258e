"""Monte Carlo robustness checks: trade-order shuffles and block bootstraps of returns.

Both produce many alternative equity paths from one backtest and report percentiles of the final
equity and of the maximum drawdown. Shuffling the order of the same trades leaves a compounded
final equity unchanged (a product does not depend on order) and shows how lucky the drawdown
was; drawing trades *with replacement* (``replace=True``) varies the final equity too. The block
bootstrap resamples the per-bar returns in contiguous blocks so autocorrelation survives. Every
draw comes from a seeded numpy Generator: the same seed gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from backtesting.engine.errors import BacktestConfigError

PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)
CHUNK_CELLS = 4_000_000  # paths are simulated in chunks of about this many steps (memory)


@dataclass(frozen=True, slots=True)
class MonteCarloResult:
    """Simulated final equities and max drawdowns (positive fractions) and their percentiles."""

    method: str
    final_equity: np.ndarray
    max_drawdown: np.ndarray
    percentiles: tuple[float, ...]

    def final_equity_percentiles(self) -> dict[float, float]:
        """Return {percentile: final equity}."""
        values = np.percentile(self.final_equity, self.percentiles)
        return dict(zip(self.percentiles, values.tolist(), strict=True))

    def max_drawdown_percentiles(self) -> dict[float, float]:
        """Return {percentile: max drawdown}."""
        values = np.percentile(self.max_drawdown, self.percentiles)
        return dict(zip(self.percentiles, values.tolist(), strict=True))

    def summary(self) -> dict[str, float]:
        """Return a flat dict (``final_equity_p5`` ... ``max_drawdown_p95``) for storage."""
        out = {f"final_equity_p{p:g}": v for p, v in self.final_equity_percentiles().items()}
        out.update({f"max_drawdown_p{p:g}": v for p, v in self.max_drawdown_percentiles().items()})
        return out


def _paths_stats(growth: np.ndarray, initial: float) -> tuple[np.ndarray, np.ndarray]:
    """Return final equity and max drawdown of each row of per-step growth factors."""
    equity = initial * np.cumprod(growth, axis=1)
    curve = np.concatenate([np.full((equity.shape[0], 1), initial), equity], axis=1)
    peaks = np.maximum.accumulate(curve, axis=1)
    drawdown = 1.0 - curve / peaks
    return equity[:, -1], drawdown.max(axis=1)


def _simulate(
    n: int, length: int, initial: float, draw: Callable[[int], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``n`` paths in chunks; ``draw(k)`` returns k rows of growth factors."""
    finals, drawdowns = [], []
    chunk = max(1, CHUNK_CELLS // max(1, length))
    for done in range(0, n, chunk):
        final, drawdown = _paths_stats(draw(min(chunk, n - done)), initial)
        finals.append(final)
        drawdowns.append(drawdown)
    return np.concatenate(finals), np.concatenate(drawdowns)


def _check(n: int, values: np.ndarray, what: str) -> None:
    if n < 1:
        raise BacktestConfigError("n_simulations must be >= 1")
    if values.size == 0:
        raise BacktestConfigError(f"no {what} to resample")
    if not np.isfinite(values).all() or (values <= -1).any():
        raise BacktestConfigError(f"{what} must be finite and above -100 %")


def shuffle_trades(
    trade_returns: Sequence[float] | np.ndarray,
    *,
    initial_equity: float,
    n_simulations: int = 1000,
    seed: int = 0,
    replace: bool = False,
    percentiles: Sequence[float] = PERCENTILES,
) -> MonteCarloResult:
    """Compound the trades' returns in random orders (or drawn with replacement)."""
    returns = np.asarray(trade_returns, dtype=float)
    _check(n_simulations, returns, "trade returns")
    rng = np.random.default_rng(seed)

    def draw(k: int) -> np.ndarray:
        if replace:
            return 1.0 + returns[rng.integers(0, returns.size, size=(k, returns.size))]
        return 1.0 + rng.permuted(np.tile(returns, (k, 1)), axis=1)

    final, drawdown = _simulate(n_simulations, returns.size, initial_equity, draw)
    method = "trade_bootstrap" if replace else "trade_shuffle"
    return MonteCarloResult(method, final, drawdown, tuple(percentiles))


def block_bootstrap(
    returns: Sequence[float] | np.ndarray,
    *,
    initial_equity: float,
    n_simulations: int = 1000,
    block: int = 20,
    seed: int = 0,
    percentiles: Sequence[float] = PERCENTILES,
) -> MonteCarloResult:
    """Rebuild paths of the same length from random contiguous blocks of ``returns``."""
    r = np.asarray(returns, dtype=float)
    _check(n_simulations, r, "returns")
    if block < 1:
        raise BacktestConfigError("block must be >= 1")
    block = min(block, r.size)
    rng = np.random.default_rng(seed)
    n_blocks = -(-r.size // block)
    offsets = np.arange(block)

    def draw(k: int) -> np.ndarray:
        starts = rng.integers(0, r.size - block + 1, size=(k, n_blocks))
        index = (starts[:, :, None] + offsets[None, None, :]).reshape(k, -1)
        return 1.0 + r[index[:, : r.size]]

    final, drawdown = _simulate(n_simulations, r.size, initial_equity, draw)
    return MonteCarloResult("block_bootstrap", final, drawdown, tuple(percentiles))
