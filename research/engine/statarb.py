"""Statistical arbitrage: cointegration tests, hedge ratios, mean-reversion speed, pair scans.

Prices are analysed in logs. Tests come from statsmodels (Engle-Granger ``coint``, Johansen
``coint_johansen``, OLS); p-values of a scan are corrected for the number of pairs tried.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.stats.multitest import multipletests
from statsmodels.tsa.stattools import coint
from statsmodels.tsa.vector_ar.vecm import coint_johansen

from research.engine.errors import ResearchInputError

MIN_OBSERVATIONS = 30


@dataclass(frozen=True, slots=True)
class CointResult:
    """Engle-Granger test of ``y`` on ``x`` (log prices) with its OLS hedge ratio."""

    y: str
    x: str
    statistic: float
    p_value: float
    hedge_ratio: float
    intercept: float
    half_life: float
    hurst: float
    n: int
    p_adjusted: float = math.nan

    def as_dict(self) -> dict[str, float | str | int]:
        """Return the fields as a JSON-friendly dict."""
        return asdict(self)


def _clean(*series: np.ndarray) -> list[np.ndarray]:
    arrays = [np.asarray(s, dtype=float) for s in series]
    if len({a.size for a in arrays}) != 1:
        raise ResearchInputError("series differ in length")
    if arrays[0].size < MIN_OBSERVATIONS:
        raise ResearchInputError(f"need at least {MIN_OBSERVATIONS} observations")
    if not all(np.isfinite(a).all() for a in arrays):
        raise ResearchInputError("series contain NaN or infinite values")
    return arrays


def hedge_ratio_ols(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Return (beta, alpha) of the OLS regression y = alpha + beta x."""
    y, x = _clean(y, x)
    # The point estimate only (no inference needed): lstsq is ~10x faster than sm.OLS on 100k.
    (beta, alpha), *_ = np.linalg.lstsq(np.column_stack([x, np.ones_like(x)]), y, rcond=None)
    return float(beta), float(alpha)


def hedge_ratio_kalman(
    y: np.ndarray, x: np.ndarray, *, delta: float = 1e-4, obs_var: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Return the filtered (beta_t, alpha_t) of y = alpha_t + beta_t x with random-walk states.

    Each estimate at t uses observations up to t only. statsmodels has no time-varying
    regression with fixed state noise in one call, hence the explicit two-state filter.
    """
    y, x = _clean(y, x)
    n = y.size
    state = np.zeros(2)
    cov = np.eye(2)
    q = delta / (1 - delta) * np.eye(2)
    betas, alphas = np.empty(n), np.empty(n)
    for t in range(n):
        h = np.array([x[t], 1.0])
        cov = cov + q
        innovation = y[t] - h @ state
        s = h @ cov @ h + obs_var
        gain = cov @ h / s
        state = state + gain * innovation
        cov = cov - np.outer(gain, h) @ cov
        betas[t], alphas[t] = state
    return betas, alphas


def half_life(spread: np.ndarray) -> float:
    """Return the half-life (in bars) of mean reversion of an AR(1) spread (inf if none)."""
    (s,) = _clean(spread)
    lagged = s[:-1]
    fit = sm.OLS(np.diff(s), sm.add_constant(lagged)).fit()
    phi = 1.0 + float(fit.params[1])
    if not 0.0 < phi < 1.0:
        return math.inf
    return -math.log(2.0) / math.log(phi)


def hurst(series: np.ndarray, *, max_lag: int = 100) -> float:
    """Return the Hurst exponent of a level series: 0.5 random walk, < 0.5 mean-reverting.

    Slope of log std(x[t+k] - x[t]) against log k for k in 2..max_lag (no library offers it).
    """
    (x,) = _clean(series)
    lags = np.arange(2, max(3, min(max_lag, x.size // 4)))
    spread = np.array([np.std(x[k:] - x[:-k]) for k in lags])
    ok = spread > 0
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(lags[ok]), np.log(spread[ok]), 1)[0])


def engle_granger(
    y: np.ndarray,
    x: np.ndarray,
    *,
    names: tuple[str, str] = ("y", "x"),
    lags: int | None = None,
    describe_below: float = 1.0,
) -> CointResult:
    """Test log prices ``y`` and ``x`` for cointegration (Engle-Granger, constant term).

    ``lags`` fixes the ADF lag order (fast scans); None picks it by AIC. Half-life and Hurst
    of the spread are computed when p <= ``describe_below`` (NaN otherwise: meaningless for a
    spread that does not revert, and the costlier part of a large scan).
    """
    y, x = _clean(y, x)
    ly, lx = np.log(y), np.log(x)
    autolag = "aic" if lags is None else None
    stat, p_value, _ = coint(ly, lx, trend="c", maxlag=lags, autolag=autolag)
    beta, alpha = hedge_ratio_ols(ly, lx)
    spread = ly - beta * lx - alpha
    described = p_value <= describe_below
    return CointResult(
        y=names[0],
        x=names[1],
        statistic=float(stat),
        p_value=float(p_value),
        hedge_ratio=beta,
        intercept=alpha,
        half_life=half_life(spread) if described else math.nan,
        hurst=hurst(spread) if described else math.nan,
        n=int(y.size),
    )


@dataclass(frozen=True, slots=True)
class JohansenResult:
    """Johansen trace test: cointegration rank at 95 % and the first cointegrating vector."""

    symbols: list[str]
    rank: int
    trace: list[float]
    critical_95: list[float]
    vector: list[float]


def johansen(prices: pd.DataFrame, *, k_ar_diff: int = 1) -> JohansenResult:
    """Run the Johansen trace test on the log prices of a basket (columns are symbols)."""
    if prices.shape[1] < 2:
        raise ResearchInputError("a basket needs at least two symbols")
    arrays = _clean(*(prices[c].to_numpy() for c in prices.columns))
    logs = np.log(np.column_stack(arrays))
    res = coint_johansen(logs, det_order=0, k_ar_diff=k_ar_diff)
    trace, crit = res.lr1, res.cvt[:, 1]
    rank = int(next((i for i in range(len(trace)) if trace[i] < crit[i]), len(trace)))
    vector = res.evec[:, 0] / res.evec[0, 0]
    return JohansenResult(
        symbols=[str(c) for c in prices.columns],
        rank=rank,
        trace=[float(v) for v in trace],
        critical_95=[float(v) for v in crit],
        vector=[float(v) for v in vector],
    )


def rolling_cointegration(
    y: np.ndarray, x: np.ndarray, *, window: int, step: int, lags: int | None = 1
) -> pd.DataFrame:
    """Return Engle-Granger p-value and hedge ratio on trailing windows ending every ``step``."""
    y, x = _clean(y, x)
    if window < MIN_OBSERVATIONS or window > y.size or step < 1:
        raise ResearchInputError(f"window must be in [{MIN_OBSERVATIONS}, {y.size}], step >= 1")
    rows = []
    for end in range(window, y.size + 1, step):
        res = engle_granger(y[end - window : end], x[end - window : end], lags=lags)
        rows.append({"end": end, "p_value": res.p_value, "hedge_ratio": res.hedge_ratio})
    return pd.DataFrame(rows)


def scan_pairs(
    prices: pd.DataFrame,
    *,
    alpha: float = 0.01,
    method: str = "fdr_bh",
    lags: int | None = 1,
) -> list[CointResult]:
    """Test every pair of columns; p-values adjusted over all pairs (BH or Holm), best first."""
    if prices.shape[1] < 2:
        raise ResearchInputError("a pair scan needs at least two symbols")
    if not 0 < alpha < 1:
        raise ResearchInputError("alpha must be in (0, 1)")
    names = [str(c) for c in prices.columns]
    arrays = {n: prices[n].to_numpy(dtype=float) for n in names}
    pairs = itertools.combinations(names, 2)
    jobs = [(arrays[a], arrays[b], (a, b), lags, alpha) for a, b in pairs]
    results = [_pair_job(job) for job in jobs]
    _, adjusted, _, _ = multipletests([r.p_value for r in results], alpha=alpha, method=method)
    out = [
        CointResult(**{**r.as_dict(), "p_adjusted": float(p)})
        for r, p in zip(results, adjusted, strict=True)
    ]
    return sorted(out, key=lambda r: r.p_value)


def _pair_job(job: tuple) -> CointResult:
    y, x, names, lags, alpha = job
    return engle_granger(y, x, names=names, lags=lags, describe_below=alpha)
