"""Performance metrics: pure functions of equity, returns and trade P&L (floats, numpy).

Conventions (those of empyrical / quantstats unless said otherwise):
* ``returns`` are simple per-period returns; ``periods_per_year`` annualises volatility, Sharpe,
  Sortino and alpha (525 600 for 1m bars of a 24/7 market, 252 for daily equities: see
  ``calendars``). Standard deviations are sample ones (ddof = 1).
* CAGR (and so Calmar) compounds over the elapsed calendar ``years`` when given, else over the
  number of returns / ``periods_per_year`` (empyrical's ``annual_return``). No return figure
  can fall below −100 %.
* Drawdowns, VaR and CVaR are **positive** fractions (a 20 % drawdown is 0.2), as in
  ``risk.engine.monitors``, which computes them.
* Trade statistics use closed round trips' net P&L (money) or their returns.
* A statistic without enough data is NaN, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd

from risk.engine.monitors import (
    drawdown_series,
    drawdown_stats,
    historical_cvar,
    historical_var,
    historical_var_cvar,
    sharpe_ratio,
    sortino_ratio,
)

NAN = float("nan")
EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()
ArrayLike = Sequence[float] | np.ndarray | pd.Series


def _arr(values: ArrayLike) -> np.ndarray:
    return np.asarray(values, dtype=float)


def returns_from_equity(equity: ArrayLike, initial: float | None = None) -> np.ndarray:
    """Return simple returns of an equity curve (from ``initial`` first when given)."""
    values = _arr(equity)
    if initial is None:
        if values.size < 2:
            return np.empty(0)
        out = np.divide(values[1:], values[:-1])
    else:
        # Into one array, not the curve with ``initial`` prepended and two temporaries (at a
        # million bars each was 8 MB of fresh memory): the same divisions.
        out = np.empty(values.size)
        if values.size:
            out[0] = values[0] / np.float64(initial)
            np.divide(values[1:], values[:-1], out=out[1:])
    out -= 1.0
    return out


# ----------------------------------------------------------------- returns and risk


def total_return(equity: ArrayLike, initial: float | None = None) -> float:
    """Return final / initial − 1 (initial defaults to the first point)."""
    values = _arr(equity)
    if values.size == 0:
        return NAN
    start = values[0] if initial is None else float(initial)
    return float(values[-1] / start - 1.0)


def cagr(
    equity: ArrayLike,
    periods_per_year: float,
    initial: float | None = None,
    years: float | None = None,
) -> float:
    """Return the compound annual growth rate: (final / initial)^(1 / years) − 1.

    ``years`` is the elapsed calendar time when given; else the number of returns /
    ``periods_per_year`` (empyrical's ``annual_return``).
    """
    values = _arr(equity)
    periods = values.size if initial is not None else values.size - 1
    if periods < 1:
        return NAN
    growth = 1.0 + total_return(values, initial)
    if growth <= 0:
        return -1.0
    span = years if years is not None else periods / periods_per_year
    if not span > 0:
        return NAN
    return float(growth ** (1.0 / span) - 1.0)


def annualised_return(returns: ArrayLike, periods_per_year: float) -> float:
    """Return the per-period growth compounded over ``periods_per_year`` periods.

    The geometric mean return annualised: never below −100 % (an arithmetic mean × periods
    is, on a losing series); equal to CAGR when the bars cover the calendar evenly.
    """
    return _annualised(_arr(returns), periods_per_year)


def _annualised(r: np.ndarray, periods_per_year: float, scratch: np.ndarray | None = None) -> float:
    """Return ``annualised_return(r, ...)``; ``scratch`` (``r``'s size) takes 1 + r."""
    if r.size == 0:
        return NAN
    growth = float(np.prod(np.add(1.0, r, out=scratch)))
    if growth <= 0:
        return -1.0
    return float(growth ** (periods_per_year / r.size) - 1.0)


def volatility(returns: ArrayLike, periods_per_year: float) -> float:
    """Return the annualised standard deviation of returns (ddof 1)."""
    r = _arr(returns)
    return float(r.std(ddof=1) * math.sqrt(periods_per_year)) if r.size > 1 else NAN


def sharpe(returns: ArrayLike, periods_per_year: float, risk_free: float = 0.0) -> float:
    """Return the annualised Sharpe ratio (per-period ``risk_free``); NaN without variance."""
    r = _arr(returns)
    if r.size < 2 or not np.isfinite(r).all():
        return NAN
    return sharpe_ratio(r, periods_per_year, risk_free)


def sortino(returns: ArrayLike, periods_per_year: float, target: float = 0.0) -> float:
    """Return the annualised Sortino ratio (downside deviation over all periods)."""
    r = _arr(returns)
    if r.size < 2 or not np.isfinite(r).all():
        return NAN
    return sortino_ratio(r, periods_per_year, target)


def max_drawdown(equity: ArrayLike) -> float:
    """Return the deepest fall from a running peak, as a positive fraction."""
    values = _arr(equity)
    if values.size == 0 or values[0] <= 0:
        return NAN
    return drawdown_stats(values).maximum


def drawdown_durations(equity: ArrayLike) -> np.ndarray:
    """Return the length in periods of every drawdown, from its peak to recovery (or the end)."""
    values = _arr(equity)
    if values.size == 0:
        return np.empty(0, dtype=int)
    return _underwater_runs(values < np.maximum.accumulate(values))


def _underwater_runs(under: np.ndarray) -> np.ndarray:
    """Return the length of each run of ``under`` counted from the peak one point before it."""
    # In int8 (the flags as bytes, padded with a False each side): a list's [0] made the
    # concatenation, and its diff, 8-byte integers, 16 MB at a million points.
    pad = np.zeros(1, dtype=np.int8)
    edges = np.diff(np.concatenate([pad, under.view(np.int8), pad]))
    starts = np.flatnonzero(edges == 1)  # first underwater point; its peak is one before
    ends = np.flatnonzero(edges == -1)  # first point back at a peak (or one past the end)
    return np.minimum(ends, under.size - 1) - (starts - 1)


def max_drawdown_duration(equity: ArrayLike) -> int:
    """Return the longest drawdown in periods (0 if the curve never fell)."""
    durations = drawdown_durations(equity)
    return int(durations.max()) if durations.size else 0


def calmar(
    equity: ArrayLike,
    periods_per_year: float,
    initial: float | None = None,
    years: float | None = None,
) -> float:
    """Return CAGR / max drawdown (NaN without a drawdown)."""
    values = _arr(equity) if initial is None else np.concatenate([[initial], _arr(equity)])
    dd = max_drawdown(values)
    if not dd or not np.isfinite(dd):
        return NAN
    return cagr(values, periods_per_year, years=years) / dd


def omega(returns: ArrayLike, threshold: float = 0.0) -> float:
    """Return the Omega ratio: gains above ``threshold`` / losses below it (per period)."""
    excess = _arr(returns)
    if threshold:  # x - 0.0 is x: no copy of the series for the usual threshold
        excess = excess - threshold
    losses = -excess[excess < 0].sum()
    if losses <= 0:
        return NAN
    return float(excess[excess > 0].sum() / losses)


def value_at_risk(returns: ArrayLike, confidence: float = 0.95) -> float:
    """Return the historical VaR as a positive loss fraction (``risk.engine.monitors``)."""
    r = _arr(returns)
    return historical_var(r, confidence) if r.size else NAN


def conditional_value_at_risk(returns: ArrayLike, confidence: float = 0.95) -> float:
    """Return the historical CVaR (expected shortfall) as a positive loss fraction."""
    r = _arr(returns)
    return historical_cvar(r, confidence) if r.size else NAN


def skew(returns: ArrayLike) -> float:
    """Return the bias-corrected sample skewness (pandas' ``Series.skew``)."""
    return _Moments.of(_arr(returns)).skew()


def kurtosis(returns: ArrayLike) -> float:
    """Return the bias-corrected excess kurtosis (pandas' ``Series.kurt``)."""
    return _Moments.of(_arr(returns)).kurtosis()


class _Moments:
    """Central moments of a return series, computed once for skew, kurtosis and the PSR
    (the formulas of ``scipy.stats.skew`` / ``kurtosis``), with its mean and sample std."""

    __slots__ = ("m2", "m3", "m4", "mean", "n", "sample_sd", "sd")

    def __init__(
        self,
        n: int,
        m2: float,
        m3: float,
        m4: float,
        sd: float,
        mean: float = NAN,
        sample_sd: float = NAN,
    ) -> None:
        self.n, self.m2, self.m3, self.m4, self.sd = n, m2, m3, m4, sd
        self.mean, self.sample_sd = mean, sample_sd

    @classmethod
    def of(cls, r: np.ndarray, work: np.ndarray | None = None) -> _Moments:
        """Return the moments of ``r`` (population moments; ``sd`` is its std, ddof 0).

        ``work``: two rows of at least ``r``'s size to compute in (else fresh arrays).
        """
        n = r.size
        if n == 0:
            return cls(0, NAN, NAN, NAN, NAN)
        mean = r.mean()
        d = np.subtract(r, mean, out=None if work is None else work[0, :n])  # r - r.mean()
        d2 = np.multiply(d, d, out=None if work is None else work[1, :n])
        total = d2.sum()
        m2 = float(total / n)  # d2.mean()
        m3 = float(np.multiply(d2, d, out=d).mean())  # into the spent buffers: no fresh memory
        m4 = float(np.multiply(d2, d2, out=d2).mean())
        # r.std(ddof=1) is numpy's sqrt of this same sum of squared deviations over n - 1:
        # taken from it, not from a third pass (and an 8 MB copy at a million bars).
        sample_sd = math.sqrt(total / (n - 1)) if n > 1 else NAN
        return cls(n, m2, m3, m4, math.sqrt(m2), mean, sample_sd)

    def skew(self) -> float:
        """Return the bias-corrected skewness (NaN below 3 points or without variance)."""
        n = self.n
        if n <= 2 or not self.sd > 0:
            return NAN
        return math.sqrt((n - 1.0) * n) / (n - 2.0) * self.m3 / self.m2**1.5

    def kurtosis(self) -> float:
        """Return the bias-corrected excess kurtosis (NaN below 4 points or without variance)."""
        n = self.n
        if n <= 3 or not self.sd > 0:
            return NAN
        ratio = self.m4 / self.m2**2.0
        return 1.0 / (n - 2) / (n - 3) * ((n**2 - 1.0) * ratio - 3 * (n - 1) ** 2.0)


def alpha_beta(
    returns: ArrayLike,
    benchmark: ArrayLike,
    periods_per_year: float,
    risk_free: float = 0.0,
) -> tuple[float, float]:
    """Return (annualised alpha, beta) against ``benchmark`` returns (empyrical's formulas).

    beta = cov(r, b) / var(b); alpha = (1 + mean(r − rf − beta (b − rf)))^ppy − 1.
    """
    r, b = _arr(returns), _arr(benchmark)
    if r.size != b.size:
        raise ValueError("returns and benchmark must have the same length")
    return _alpha_beta(r, b, periods_per_year, risk_free)


def _alpha_beta(
    r: np.ndarray,
    b: np.ndarray,
    periods_per_year: float,
    risk_free: float,
    work: np.ndarray | None = None,
) -> tuple[float, float]:
    """Return ``alpha_beta(r, b, ...)`` (same sizes); ``work``: two rows of at least that size
    to compute in (else fresh arrays)."""
    if r.size < 2:
        return NAN, NAN
    # The same operations in two buffers (seven temporaries of the series before).
    n = r.size
    centred = np.subtract(b, b.mean(), out=None if work is None else work[0, :n])  # b - b.mean()
    scratch = np.multiply(centred, centred, out=None if work is None else work[1, :n])
    var = np.mean(scratch)
    if var <= 0:
        return NAN, NAN
    beta = float(np.mean(np.multiply(centred, r, out=scratch)) / var)
    excess = np.subtract(b, risk_free, out=centred)
    np.multiply(beta, excess, out=excess)
    alpha_series = np.subtract(np.subtract(r, risk_free, out=scratch), excess, out=scratch)
    base = 1.0 + alpha_series.mean()
    alpha = base**periods_per_year - 1.0 if base > 0 else -1.0
    return float(alpha), beta


def probabilistic_sharpe(returns: ArrayLike, benchmark_sharpe: float = 0.0) -> float:
    """Return P(true Sharpe > ``benchmark_sharpe``) (Bailey & López de Prado, per period).

    PSR = Φ((SR − SR*) √(n − 1) / √(1 − γ₃ SR + (γ₄ − 1) / 4 SR²)) with SR the per-period
    Sharpe (ddof 1), γ₃ the skewness and γ₄ the (non-excess) kurtosis, both moment estimates.
    """
    r = _arr(returns)
    return _psr(r, _Moments.of(r), benchmark_sharpe)


def _psr(
    r: np.ndarray, moments: _Moments, benchmark_sharpe: float, sd: float | None = None
) -> float:
    """Return the PSR (``sd``: ``r.std(ddof=1)`` when the caller has it)."""
    if r.size < 3:
        return NAN
    if sd is None:
        sd = r.std(ddof=1)
    if sd <= 0:
        return NAN
    sr = moments.mean / sd  # r.mean()
    g3 = moments.m3 / moments.m2**1.5  # biased skewness and (non-excess) kurtosis
    g4 = moments.m4 / moments.m2**2.0
    denom = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr * sr
    if denom <= 0:
        return NAN
    return _NORMAL.cdf((sr - benchmark_sharpe) * math.sqrt(r.size - 1) / math.sqrt(denom))


def expected_max_sharpe(trial_sharpes: ArrayLike) -> float:
    """Return the Sharpe the best of N unskilled trials reaches by luck (per period).

    SR₀ = √V · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))), V the variance of the trials'
    Sharpe ratios and γ the Euler–Mascheroni constant.
    """
    sr = _arr(trial_sharpes)
    sr = sr[np.isfinite(sr)]
    n = sr.size
    if n < 2:
        return 0.0
    spread = math.sqrt(sr.var(ddof=1))
    inv = _NORMAL.inv_cdf
    return spread * ((1 - EULER_GAMMA) * inv(1 - 1 / n) + EULER_GAMMA * inv(1 - 1 / (n * math.e)))


def deflated_sharpe(returns: ArrayLike, trial_sharpes: ArrayLike) -> float:
    """Return the PSR against the luck benchmark of the trials (deflated Sharpe ratio)."""
    return probabilistic_sharpe(returns, expected_max_sharpe(trial_sharpes))


# ----------------------------------------------------------------- trades


def win_rate(pnls: ArrayLike) -> float:
    """Return the share of trades with positive P&L."""
    p = _arr(pnls)
    return float((p > 0).mean()) if p.size else NAN


def profit_factor(pnls: ArrayLike) -> float:
    """Return gross profit / gross loss (inf with no loss, NaN with no trade)."""
    p = _arr(pnls)
    if p.size == 0:
        return NAN
    loss = -p[p < 0].sum()
    gain = p[p > 0].sum()
    if loss == 0:
        return math.inf if gain > 0 else NAN
    return float(gain / loss)


def expectancy(pnls: ArrayLike) -> float:
    """Return the mean P&L per trade."""
    p = _arr(pnls)
    return float(p.mean()) if p.size else NAN


def average_win(pnls: ArrayLike) -> float:
    """Return the mean P&L of winning trades."""
    p = _arr(pnls)
    wins = p[p > 0]
    return float(wins.mean()) if wins.size else NAN


def average_loss(pnls: ArrayLike) -> float:
    """Return the mean P&L of losing trades (negative)."""
    p = _arr(pnls)
    losses = p[p < 0]
    return float(losses.mean()) if losses.size else NAN


def sqn(pnls: ArrayLike) -> float:
    """Return Van Tharp's System Quality Number √n · mean / std (ddof 1)."""
    p = _arr(pnls)
    if p.size < 2:
        return NAN
    sd = p.std(ddof=1)
    return float(math.sqrt(p.size) * p.mean() / sd) if sd > 0 else NAN


def kelly_fraction(pnls: ArrayLike) -> float:
    """Return the Kelly fraction W − (1 − W) / R, R = average win / |average loss|."""
    p = _arr(pnls)
    win, loss = average_win(p), average_loss(p)
    if not (np.isfinite(win) and np.isfinite(loss)):
        return NAN
    w = win_rate(p)
    return float(w - (1 - w) / (win / -loss))


def exposure_time(in_market: ArrayLike) -> float:
    """Return the share of periods with an open position."""
    flags = np.asarray(in_market, dtype=bool)
    # The count over the size: what ``flags.mean()`` sums exactly (whole numbers), without
    # casting every flag to a float first.
    return float(np.count_nonzero(flags) / flags.size) if flags.size else NAN


# ----------------------------------------------------------------- summary


def summarize(
    equity: ArrayLike,
    *,
    initial: float,
    periods_per_year: float,
    trade_pnls: ArrayLike = (),
    trade_returns: ArrayLike = (),
    benchmark_returns: ArrayLike | None = None,
    in_market: ArrayLike | None = None,
    turnover: float = NAN,
    trial_sharpes: ArrayLike | None = None,
    years: float | None = None,
) -> dict[str, float]:
    """Return every metric of a run as a flat ``{name: float}`` dict (``years``: the elapsed
    calendar time CAGR and Calmar compound over)."""
    values = _arr(equity)
    r = returns_from_equity(values, initial)
    # Two scratch rows that the passes over the whole series below compute in, one after the
    # other: at a million bars each fresh 8 MB temporary cost more in page faults than in
    # arithmetic (the same operations on the same values: the figures are bit for bit equal).
    work = np.empty((2, values.size + 1))
    moments = _Moments.of(r, work)
    sd = moments.sample_sd if r.size > 1 else None  # once, for volatility, the ratios and PSR
    out = _return_metrics(values, r, initial, periods_per_year, moments, years, sd, work)
    out.update(_trade_metrics(_arr(trade_pnls), _arr(trade_returns)))
    out["exposure_time"] = exposure_time(in_market) if in_market is not None else NAN
    out["turnover"] = float(turnover)
    alpha, beta = NAN, NAN
    if benchmark_returns is not None and _arr(benchmark_returns).size == r.size:
        alpha, beta = _alpha_beta(r, _arr(benchmark_returns), periods_per_year, 0.0, work)
    out["alpha"], out["beta"] = alpha, beta
    out["probabilistic_sharpe"] = _psr(r, moments, 0.0, sd)
    trials = _arr(trial_sharpes) if trial_sharpes is not None else np.empty(0)
    out["deflated_sharpe"] = (
        _psr(r, moments, expected_max_sharpe(trials), sd) if trials.size > 1 else NAN
    )
    return out


def _return_metrics(
    values: np.ndarray,
    r: np.ndarray,
    initial: float,
    ppy: float,
    moments: _Moments,
    years: float | None = None,
    sd: float | None = None,
    work: np.ndarray | None = None,
) -> dict[str, float]:
    """Return the figures of the equity and its returns (``work``: two scratch rows of the
    curve's size plus one, as ``summarize`` passes them)."""
    if sd is None and r.size > 1:
        sd = r.std(ddof=1)
    if work is None:
        work = np.empty((2, values.size + 1))
    curve = work[0]  # np.concatenate([[initial], values]), in the first row
    curve[0] = initial
    curve[1:] = values
    dd, longest = _drawdown_figures(curve, work[1])
    finite = bool(np.isfinite(r).all())
    scratch = work[0, : r.size]  # the curve is spent: a row for each pass below in turn
    var, cvar = _var_cvar(r, finite, scratch) if r.size else (NAN, NAN)
    growth = cagr(values, ppy, initial, years)
    vol, ratio, downside_ratio = _spread_ratios(r, ppy, sd, moments.mean, finite, scratch)
    return {
        "total_return": total_return(values, initial),
        "annualised_return": _annualised(r, ppy, scratch),
        "cagr": growth,
        "volatility": vol,
        "sharpe": ratio,
        "sortino": downside_ratio,
        "calmar": growth / dd if dd and np.isfinite(dd) else NAN,  # as ``calmar``
        "omega": omega(r),
        "max_drawdown": dd,
        "max_drawdown_duration": float(longest),
        "var_95": var,  # as ``value_at_risk`` and ``conditional_value_at_risk``
        "cvar_95": cvar,
        "skew": moments.skew(),
        "kurtosis": moments.kurtosis(),
        "final_equity": float(values[-1]) if values.size else float(initial),
    }


def _drawdown_figures(curve: np.ndarray, scratch: np.ndarray | None = None) -> tuple[float, int]:
    """Return ``max_drawdown(curve)`` and ``max_drawdown_duration(curve)`` from one running peak.

    The same operations as those two (bit for bit); a curve they refuse or give NaN for goes
    through them. ``scratch`` (the curve's size) takes the running peak.
    """
    if not (curve.size and curve[0] > 0 and np.isfinite(curve).all()):
        return max_drawdown(curve), max_drawdown_duration(curve)
    peak = np.maximum.accumulate(curve, out=scratch)
    durations = _underwater_runs(curve < peak)
    dd = np.divide(curve, peak, out=peak)  # 1 - curve / peak (``drawdown_series``), in place
    np.subtract(1.0, dd, out=dd)
    return float(dd[int(np.argmax(dd))]), int(durations.max()) if durations.size else 0


def _var_cvar(r: np.ndarray, finite: bool, scratch: np.ndarray) -> tuple[float, float]:
    """Return ``historical_var_cvar(r)`` (95 %): the same k worst returns, partitioned in
    ``scratch`` (``r``'s size) rather than in a fresh copy of the series (bit for bit: the
    sorted k smallest values are the same whatever the partition left them in)."""
    if not finite:
        return historical_var_cvar(r)  # which refuses them, as it did
    k = max(1, math.ceil(round(r.size * (1.0 - 0.95), 9)))  # as ``monitors._tail``
    np.copyto(scratch, r)
    if k < r.size:
        scratch.partition(k - 1)
    tail = np.sort(scratch[:k])
    return -float(tail[-1]), -float(tail.mean())


def _spread_ratios(
    r: np.ndarray,
    ppy: float,
    sd: float | None,
    mean: float,
    finite: bool,
    scratch: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """Return ``volatility``, ``sharpe`` and ``sortino`` of ``r`` from one standard deviation.

    The same operations as those three (``risk.engine.monitors``' ratios over one window of the
    whole series, bit for bit) without their copies of the series and NaN padding. ``mean``:
    ``r.mean()``; ``finite``: whether every return is finite; ``scratch``: ``r``'s size.
    """
    if r.size < 2 or sd is None:
        return NAN, NAN, NAN
    scale = math.sqrt(ppy)
    vol = float(sd * scale)
    if not finite:
        return vol, NAN, NAN
    ratio = float(mean / sd * scale) if sd > 1e-15 else NAN  # as ``monitors._ratio``
    below = np.minimum(r, 0.0, out=scratch)
    downside = np.sqrt(np.mean(np.square(below, out=below)))  # (min(r, 0) ** 2), in place
    downside_ratio = float(mean / downside * scale) if downside > 1e-15 else NAN
    return vol, ratio, downside_ratio


def _trade_metrics(pnls: np.ndarray, rets: np.ndarray) -> dict[str, float]:
    return {
        "trades": float(pnls.size),
        "win_rate": win_rate(pnls),
        "profit_factor": profit_factor(pnls),
        "expectancy": expectancy(pnls),
        "average_win": average_win(pnls),
        "average_loss": average_loss(pnls),
        "best_trade": float(rets.max()) if rets.size else NAN,
        "worst_trade": float(rets.min()) if rets.size else NAN,
        "average_trade": float(rets.mean()) if rets.size else NAN,
        "sqn": sqn(pnls),
        "kelly": kelly_fraction(pnls),
    }


def drawdown_curve(equity: ArrayLike) -> np.ndarray:
    """Return the drawdown (positive fraction) at each point of an equity curve."""
    values = _arr(equity)
    return drawdown_series(values) if values.size and values[0] > 0 else np.full(values.size, NAN)
