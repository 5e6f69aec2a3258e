"""Market microstructure from trades, quotes and books: price impact, spreads, volatility, toxicity.

Inputs are DataFrames indexed by UTC timestamps: trades with ``price``, ``size`` and optional
``side`` ("buy"/"sell"); quotes with ``bid``, ``ask``, ``bid_size``, ``ask_size``; book
snapshots with the same top-of-book columns plus ``bid_depth``/``ask_depth`` (size summed over
the top levels). Quotes are matched to trades with the last quote at or before the trade (no
look-ahead); a book's imbalance is only related to mid changes that come after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.tsa.stattools import acf

from research.engine.errors import ResearchInputError


@dataclass(frozen=True, slots=True)
class ImpactFit:
    """OLS of price change on signed flow per interval: slope, its t-statistic and p-value."""

    coefficient: float
    t_statistic: float
    p_value: float
    r_squared: float
    n: int


def _need(frame: pd.DataFrame, columns: tuple[str, ...], what: str, minimum: int = 10) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ResearchInputError(f"{what} lack column(s) {', '.join(missing)}")
    if len(frame) < minimum:
        raise ResearchInputError(f"need at least {minimum} {what}, got {len(frame)}")


def trade_signs(trades: pd.DataFrame) -> pd.Series:
    """Return +1/-1 aggressor signs: the recorded side, else the tick rule."""
    _need(trades, ("price",), "trades")
    tick = np.sign(trades["price"].diff()).replace(0, np.nan).ffill().fillna(1.0)
    if "side" not in trades.columns:
        return tick
    side = trades["side"].map({"buy": 1.0, "sell": -1.0})
    return side.fillna(tick)


def _fit(y: np.ndarray, x: np.ndarray) -> ImpactFit:
    ok = np.isfinite(y) & np.isfinite(x)
    y, x = y[ok], x[ok]
    if y.size < 10 or np.ptp(x) == 0:
        raise ResearchInputError("not enough intervals with flow to fit an impact")
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    return ImpactFit(
        coefficient=float(fit.params[1]),
        t_statistic=float(fit.tvalues[1]),
        p_value=float(fit.pvalues[1]),
        r_squared=float(fit.rsquared),
        n=int(y.size),
    )


def kyle_lambda(trades: pd.DataFrame, *, interval: str = "1min") -> ImpactFit:
    """Fit Kyle's lambda: last-price change per interval on signed volume in that interval."""
    _need(trades, ("price", "size"), "trades")
    flow = (trade_signs(trades) * trades["size"]).resample(interval).sum()
    price = trades["price"].resample(interval).last().ffill()
    dp = price.diff()
    return _fit(dp.to_numpy()[1:], flow.to_numpy()[1:])


def order_flow_imbalance(quotes: pd.DataFrame) -> pd.Series:
    """Return Cont-Kukanov-Stoikov order-flow imbalance of each quote update."""
    _need(quotes, ("bid", "ask", "bid_size", "ask_size"), "quotes", minimum=2)
    b, a = quotes["bid"], quotes["ask"]
    qb, qa = quotes["bid_size"], quotes["ask_size"]
    pb, pa, pqb, pqa = b.shift(), a.shift(), qb.shift(), qa.shift()
    e = (b >= pb) * qb - (b <= pb) * pqb - (a <= pa) * qa + (a >= pa) * pqa
    return e.iloc[1:].astype(float)


def ofi_impact(quotes: pd.DataFrame, *, interval: str = "1min") -> ImpactFit:
    """Regress the mid-price change per interval on the order-flow imbalance in it."""
    ofi = order_flow_imbalance(quotes).resample(interval).sum()
    mid = ((quotes["bid"] + quotes["ask"]) / 2).resample(interval).last().ffill()
    dmid = mid.diff().reindex(ofi.index)
    return _fit(dmid.to_numpy()[1:], ofi.to_numpy()[1:])


def roll_spread(prices: pd.Series) -> float:
    """Return Roll's spread estimate 2 sqrt(-cov(dp_t, dp_t-1)), NaN if the covariance >= 0."""
    dp = np.diff(np.asarray(prices, dtype=float))
    if dp.size < 10:
        raise ResearchInputError("need at least 10 prices for Roll's spread")
    cov = np.cov(dp[1:], dp[:-1])[0, 1]
    return 2.0 * math.sqrt(-cov) if cov < 0 else math.nan


def _with_quotes(trades: pd.DataFrame, quotes: pd.DataFrame) -> pd.DataFrame:
    _need(trades, ("price",), "trades")
    _need(quotes, ("bid", "ask"), "quotes")
    left = trades.sort_index().rename_axis("ts").reset_index()
    right = quotes[["bid", "ask"]].sort_index().rename_axis("ts").reset_index()
    merged = pd.merge_asof(left, right, on="ts", direction="backward")
    return merged.dropna(subset=["bid", "ask"]).set_index("ts")


def effective_spread(trades: pd.DataFrame, quotes: pd.DataFrame) -> pd.Series:
    """Return each trade's effective spread 2|p - mid| / mid against the prevailing quote."""
    merged = _with_quotes(trades, quotes)
    mid = (merged["bid"] + merged["ask"]) / 2
    return 2 * (merged["price"] - mid).abs() / mid


def realised_volatility(prices: pd.Series, *, interval: str = "5min") -> float:
    """Return the realised volatility: sqrt of summed squared log returns at ``interval``."""
    sampled = np.log(prices.resample(interval).last().dropna())
    return float(np.sqrt((sampled.diff().dropna() ** 2).sum()))


def signature_plot(prices: pd.Series, *, intervals: list[str]) -> pd.Series:
    """Return realised volatility per sampling interval (microstructure noise inflates it)."""
    return pd.Series({i: realised_volatility(prices, interval=i) for i in intervals})


def vpin(trades: pd.DataFrame, *, bucket_volume: float, window: int = 50) -> pd.Series:
    """Return VPIN per volume bucket: rolling mean |buy - sell| / bucket volume.

    Volume is split by bulk classification: the share bought is Phi(dp / sigma) of each bar
    of trades between buckets (Easley, López de Prado, O'Hara 2012).
    """
    _need(trades, ("price", "size"), "trades")
    if bucket_volume <= 0 or window < 1:
        raise ResearchInputError("bucket_volume must be positive and window >= 1")
    bucket = (trades["size"].cumsum() // bucket_volume).astype(int)
    grouped = trades.groupby(bucket.to_numpy())
    volume = grouped["size"].sum()
    dp = grouped["price"].last().diff()
    sigma = dp.std()
    if not sigma > 0:
        raise ResearchInputError("prices do not move; VPIN is undefined")
    buy = volume * stats.norm.cdf(dp.fillna(0.0) / sigma)
    imbalance = (2 * buy - volume).abs() / volume
    return imbalance.rolling(window).mean().dropna()


def sign_autocorrelation(trades: pd.DataFrame, *, lags: int = 20) -> np.ndarray:
    """Return the autocorrelation of trade signs at lags 1..``lags`` (order splitting)."""
    signs = trade_signs(trades).to_numpy()
    if signs.size <= lags + 1:
        raise ResearchInputError(f"need more than {lags + 1} trades")
    return acf(signs, nlags=lags, fft=True)[1:]


def book_imbalance(book: pd.DataFrame) -> pd.Series:
    """Return each snapshot's depth imbalance (bid - ask) / (bid + ask) over its top levels."""
    _need(book, ("bid_depth", "ask_depth"), "book snapshots", minimum=2)
    total = book["bid_depth"] + book["ask_depth"]
    return ((book["bid_depth"] - book["ask_depth"]) / total.where(total > 0)).astype(float)


def imbalance_impact(book: pd.DataFrame, *, interval: str = "1min") -> ImpactFit:
    """Regress the mid change over the next interval on the book imbalance at this one's end.

    The imbalance is the last snapshot of interval t; the mid change runs from that snapshot's
    mid to the last mid of interval t+1, so the regressor never sees the move it predicts.
    """
    _need(book, ("bid", "ask"), "book snapshots")
    imbalance = book_imbalance(book).resample(interval).last()
    mid = ((book["bid"] + book["ask"]) / 2).resample(interval).last()
    ahead = mid.shift(-1) - mid
    return _fit(ahead.to_numpy()[:-1], imbalance.to_numpy()[:-1])


def _try(fn, *args, **kwargs) -> float:
    """Return ``fn(...)`` as a float (an ImpactFit's coefficient), NaN where data are too few."""
    try:
        value = fn(*args, **kwargs)
    except (ResearchInputError, ValueError, ZeroDivisionError):
        return math.nan
    return float(value.coefficient if isinstance(value, ImpactFit) else value)


def by_hour(
    trades: pd.DataFrame,
    quotes: pd.DataFrame | None = None,
    book: pd.DataFrame | None = None,
    *,
    interval: str = "1min",
) -> pd.DataFrame:
    """Return every microstructure statistic per UTC hour of day (NaN where data are too few).

    Columns: hour, trades, kyle_lambda (and its p_value), roll_spread, realised_vol (per
    ``interval``, summed over the hour's data), sign_acf1, vpin (mean; buckets of 1/50 of the
    hour's volume), effective_spread, ofi_impact (quotes), book_ofi_impact and
    imbalance_impact (book snapshots). Hours with fewer than 10 trades are skipped.
    """
    rows = []
    for hour, part in trades.groupby(trades.index.hour):
        if len(part) < 10:
            continue
        q = None if quotes is None else quotes[quotes.index.hour == hour]
        b = None if book is None else book[book.index.hour == hour]
        try:
            kyle = kyle_lambda(part, interval=interval)
            k_coef, k_p = kyle.coefficient, kyle.p_value
        except ResearchInputError:
            k_coef = k_p = math.nan
        row = {
            "hour": int(hour),
            "trades": len(part),
            "kyle_lambda": k_coef,
            "p_value": k_p,
            "roll_spread": _try(roll_spread, part["price"]),
            "realised_vol": _try(realised_volatility, part["price"], interval=interval),
            "sign_acf1": _try(lambda t: sign_autocorrelation(t, lags=1)[0], part),
            "vpin": _try(
                lambda t: vpin(t, bucket_volume=t["size"].sum() / 50, window=5).mean(), part
            ),
        }
        if q is not None and len(q) >= 10:
            row["effective_spread"] = _try(lambda t, qq: effective_spread(t, qq).mean(), part, q)
            row["ofi_impact"] = _try(ofi_impact, q, interval=interval)
        if b is not None and len(b) >= 10:
            row["book_ofi_impact"] = _try(ofi_impact, b, interval=interval)
            row["imbalance_impact"] = _try(imbalance_impact, b, interval=interval)
        rows.append(row)
    return pd.DataFrame(rows)
