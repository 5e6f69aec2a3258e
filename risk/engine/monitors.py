"""Risk monitors computed from returns, equity and positions: VaR/CVaR, drawdown, Sharpe, Sortino.

Statistics are floats (numpy); Decimal inputs are converted. Money-valued outputs that come
straight from positions (exposure by symbol) stay Decimal.

Sign convention: VaR and CVaR are reported as **positive loss numbers** in the unit of the input:
a 95 % VaR of 0.03 on daily returns means "on the worst 5 % of days we lose at least 3 %"; on a
P&L series it is a loss in quote currency. A negative VaR means even the tail is a gain.

Historical VaR uses the order statistic: with n observations and k = ceil(n × (1 − c)), VaR is
minus the k-th smallest return and CVaR minus the mean of the k smallest (so CVaR ≥ VaR).
Parametric (Gaussian) VaR = σ·z_c − μ and CVaR = σ·φ(z_c)/(1 − c) − μ, with z_c the standard
normal c-quantile and σ the sample standard deviation (ddof = 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from statistics import NormalDist

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from risk.engine.errors import InsufficientDataError, RiskInputError
from trading.engine.hooks import PositionView

FloatLike = float | int | Decimal
_STANDARD_NORMAL = NormalDist()


def as_array(values: Sequence[FloatLike] | np.ndarray, what: str = "values") -> np.ndarray:
    """Return ``values`` as a 1-D float array, refusing NaN and infinities."""
    arr = np.asarray([float(v) for v in values] if not isinstance(values, np.ndarray) else values)
    arr = arr.astype(float, copy=False)
    if arr.ndim != 1:
        raise RiskInputError(f"{what}: expected a 1-D series, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise RiskInputError(f"{what}: contains NaN or infinite values")
    return arr


def _check_confidence(confidence: float) -> None:
    """Raise unless 0 < confidence < 1."""
    if not 0.0 < confidence < 1.0:
        raise RiskInputError(f"confidence must be in (0, 1), got {confidence}")


def _tail(returns: Sequence[FloatLike] | np.ndarray, confidence: float) -> np.ndarray:
    """Return the k worst observations, k = ceil(n × (1 − confidence)), sorted ascending."""
    _check_confidence(confidence)
    arr = as_array(returns, "returns")
    if arr.size == 0:
        raise InsufficientDataError("VaR needs at least one observation")
    # Round first: 100 × (1 − 0.95) is 5.000000000000004 in binary floating point.
    k = max(1, math.ceil(round(arr.size * (1.0 - confidence), 9)))
    if k < arr.size:
        arr = np.partition(arr, k - 1)[:k]  # the k smallest, unordered: O(n), not a full sort
    return np.sort(arr)[:k]


def historical_var(returns: Sequence[FloatLike] | np.ndarray, confidence: float = 0.95) -> float:
    """Return historical VaR as a positive loss (minus the k-th worst return)."""
    return -float(_tail(returns, confidence)[-1])


def historical_cvar(returns: Sequence[FloatLike] | np.ndarray, confidence: float = 0.95) -> float:
    """Return historical CVaR (expected shortfall): minus the mean of the k worst returns."""
    return -float(_tail(returns, confidence).mean())


def historical_var_cvar(
    returns: Sequence[FloatLike] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """Return (historical VaR, historical CVaR) from one pass over the tail."""
    tail = _tail(returns, confidence)
    return -float(tail[-1]), -float(tail.mean())


def gaussian_var(mean: float, std: float, confidence: float = 0.95) -> float:
    """Return the VaR of a normal distribution N(mean, std²) as a positive loss."""
    _check_confidence(confidence)
    if std < 0:
        raise RiskInputError(f"std must be >= 0, got {std}")
    return std * _STANDARD_NORMAL.inv_cdf(confidence) - mean


def gaussian_cvar(mean: float, std: float, confidence: float = 0.95) -> float:
    """Return the CVaR of N(mean, std²): σ·φ(z_c)/(1 − c) − μ."""
    _check_confidence(confidence)
    if std < 0:
        raise RiskInputError(f"std must be >= 0, got {std}")
    z = _STANDARD_NORMAL.inv_cdf(confidence)
    return std * _STANDARD_NORMAL.pdf(z) / (1.0 - confidence) - mean


def _moments(returns: Sequence[FloatLike] | np.ndarray) -> tuple[float, float]:
    """Return the mean and sample standard deviation (ddof = 1)."""
    arr = as_array(returns, "returns")
    if arr.size < 2:
        raise InsufficientDataError("parametric VaR needs at least 2 observations")
    return float(arr.mean()), float(arr.std(ddof=1))


def parametric_var(returns: Sequence[FloatLike] | np.ndarray, confidence: float = 0.95) -> float:
    """Return Gaussian VaR with mean and standard deviation estimated from ``returns``."""
    return gaussian_var(*_moments(returns), confidence)


def parametric_cvar(returns: Sequence[FloatLike] | np.ndarray, confidence: float = 0.95) -> float:
    """Return Gaussian CVaR with mean and standard deviation estimated from ``returns``."""
    return gaussian_cvar(*_moments(returns), confidence)


@dataclass(frozen=True, slots=True)
class VaRReport:
    """Historical and parametric VaR/CVaR at 95 % and 99 %, as positive losses."""

    historical_var_95: float
    historical_cvar_95: float
    historical_var_99: float
    historical_cvar_99: float
    parametric_var_95: float
    parametric_cvar_95: float
    parametric_var_99: float
    parametric_cvar_99: float


def var_report(returns: Sequence[FloatLike] | np.ndarray) -> VaRReport:
    """Compute every VaR/CVaR variant the risk dashboard shows."""
    arr = as_array(returns, "returns")
    mean, std = _moments(arr)
    return VaRReport(
        historical_var_95=historical_var(arr, 0.95),
        historical_cvar_95=historical_cvar(arr, 0.95),
        historical_var_99=historical_var(arr, 0.99),
        historical_cvar_99=historical_cvar(arr, 0.99),
        parametric_var_95=gaussian_var(mean, std, 0.95),
        parametric_cvar_95=gaussian_cvar(mean, std, 0.95),
        parametric_var_99=gaussian_var(mean, std, 0.99),
        parametric_cvar_99=gaussian_cvar(mean, std, 0.99),
    )


def portfolio_pnl(
    exposures: Mapping[str, FloatLike], returns: Mapping[str, Sequence[FloatLike]]
) -> np.ndarray:
    """Return the P&L series Σ exposure_i × r_i,t of today's exposures over past returns.

    Series are aligned on their most recent observations (the shortest one sets the length);
    feed the result to the VaR functions for a money VaR of the current book.
    """
    symbols = [s for s, e in exposures.items() if float(e) != 0.0]
    if not symbols:
        return np.zeros(0)
    missing = [s for s in symbols if s not in returns]
    if missing:
        raise InsufficientDataError(f"no returns for {', '.join(missing)}")
    series = [as_array(returns[s], f"returns[{s}]") for s in symbols]
    length = min(len(s) for s in series)
    matrix = np.stack([s[len(s) - length :] for s in series])
    weights = np.array([float(exposures[s]) for s in symbols])
    return weights @ matrix


@dataclass(frozen=True, slots=True)
class DrawdownStats:
    """Drawdowns as positive fractions of the running peak."""

    current: float
    maximum: float
    peak: float  # the running peak at the end of the series
    max_peak_index: int  # where the deepest drawdown's peak was
    max_trough_index: int  # where the deepest drawdown bottomed


def drawdown_series(equity: Sequence[FloatLike] | np.ndarray) -> np.ndarray:
    """Return 1 − equity / running peak at each point (0 at new highs)."""
    arr = as_array(equity, "equity")
    if arr.size == 0:
        raise InsufficientDataError("drawdown needs at least one equity point")
    if arr[0] <= 0:
        raise RiskInputError(f"equity must start positive, got {arr[0]}")
    return 1.0 - arr / np.maximum.accumulate(arr)


def drawdown_stats(equity: Sequence[FloatLike] | np.ndarray) -> DrawdownStats:
    """Return the current and maximum drawdown of an equity curve."""
    arr = as_array(equity, "equity")
    dd = drawdown_series(arr)
    trough = int(np.argmax(dd))
    peak_idx = int(np.argmax(arr[: trough + 1]))
    return DrawdownStats(
        current=float(dd[-1]),
        maximum=float(dd[trough]),
        peak=float(arr.max()),
        max_peak_index=peak_idx,
        max_trough_index=trough,
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray, scale: float) -> np.ndarray:
    """Return numerator / denominator × scale, NaN where the denominator is zero."""
    out = np.full(numerator.shape, np.nan)
    ok = denominator > 1e-15
    out[ok] = numerator[ok] / denominator[ok] * scale
    return out


def _windows(returns: Sequence[FloatLike] | np.ndarray, window: int, offset: float) -> np.ndarray:
    """Return the sliding windows (rows) of ``returns − offset``."""
    arr = as_array(returns, "returns") - offset
    if window < 2:
        raise RiskInputError(f"window must be >= 2, got {window}")
    if arr.size < window:
        raise InsufficientDataError(f"need at least {window} returns, got {arr.size}")
    return sliding_window_view(arr, window)


def _pad(values: np.ndarray, window: int) -> np.ndarray:
    """Prefix ``window − 1`` NaNs so the result aligns with the input series."""
    return np.concatenate([np.full(window - 1, np.nan), values])


def rolling_sharpe(
    returns: Sequence[FloatLike] | np.ndarray,
    window: int,
    periods_per_year: float = 1.0,
    risk_free: float = 0.0,
) -> np.ndarray:
    """Return the rolling Sharpe ratio mean/std (ddof 1) × √periods, NaN-padded to input length."""
    rows = _windows(returns, window, risk_free)
    ratio = _ratio(rows.mean(axis=1), rows.std(axis=1, ddof=1), math.sqrt(periods_per_year))
    return _pad(ratio, window)


def rolling_sortino(
    returns: Sequence[FloatLike] | np.ndarray,
    window: int,
    periods_per_year: float = 1.0,
    target: float = 0.0,
) -> np.ndarray:
    """Return the rolling Sortino ratio mean / downside deviation × √periods, NaN-padded.

    Downside deviation is √(mean(min(r − target, 0)²)) over the whole window; NaN when the
    window has no return below target.
    """
    rows = _windows(returns, window, target)
    downside = np.sqrt(np.mean(np.minimum(rows, 0.0) ** 2, axis=1))
    ratio = _ratio(rows.mean(axis=1), downside, math.sqrt(periods_per_year))
    return _pad(ratio, window)


def sharpe_ratio(
    returns: Sequence[FloatLike] | np.ndarray, periods_per_year: float = 1.0, risk_free: float = 0.0
) -> float:
    """Return the Sharpe ratio of the whole series (NaN if it has no variance)."""
    arr = as_array(returns, "returns")
    return float(rolling_sharpe(arr, arr.size, periods_per_year, risk_free)[-1])


def sortino_ratio(
    returns: Sequence[FloatLike] | np.ndarray, periods_per_year: float = 1.0, target: float = 0.0
) -> float:
    """Return the Sortino ratio of the whole series (NaN if nothing fell below target)."""
    arr = as_array(returns, "returns")
    return float(rolling_sortino(arr, arr.size, periods_per_year, target)[-1])


def exposure_by_symbol(
    positions: Mapping[str, PositionView], equity: Decimal | None = None
) -> dict[str, Decimal]:
    """Return signed market value per symbol, or a fraction of ``equity`` when given."""
    values = {s: p.market_value for s, p in positions.items() if p.quantity != 0}
    if equity is None:
        return values
    if equity <= 0:
        raise RiskInputError(f"equity must be > 0 to express exposure as a fraction, got {equity}")
    return {s: v / equity for s, v in values.items()}
