"""Hypothesis tests for trading results, with the corrections that stop a researcher fooling
themselves: multiple testing, data snooping across strategies, selection bias of the best one.

Losses for White's Reality Check and Hansen's SPA are negative returns against a benchmark that
earns nothing (flat), both from ``arch.bootstrap``. PBO follows Bailey, Borwein, López de Prado
and Zhu (2017), combinatorially symmetric cross-validation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from arch.bootstrap import SPA, StationaryBootstrap
from scipy import stats
from statsmodels.stats.multitest import multipletests

from backtesting.engine.metrics import deflated_sharpe
from research.engine.errors import ResearchInputError
from research.engine.names import CORRECTIONS


@dataclass(frozen=True, slots=True)
class MeanTest:
    """One-sample t-test of mean return with a block-bootstrap confidence interval."""

    mean: float
    t_statistic: float
    p_value: float
    ci_low: float
    ci_high: float
    n: int


def _returns(values: np.ndarray, minimum: int = 10) -> np.ndarray:
    r = np.asarray(values, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < minimum:
        raise ResearchInputError(f"need at least {minimum} finite returns, got {r.size}")
    return r


def mean_return_test(
    returns: np.ndarray, *, confidence: float = 0.95, reps: int = 1000, seed: int = 0
) -> MeanTest:
    """Test H0: mean return = 0 (t-test) and bootstrap a CI that respects serial dependence."""
    r = _returns(returns)
    t = stats.ttest_1samp(r, 0.0)
    block = max(1, int(round(r.size ** (1 / 3))))
    bs = StationaryBootstrap(block, r, seed=np.random.default_rng(seed))
    ci = bs.conf_int(np.mean, reps=reps, method="percentile", size=confidence)
    return MeanTest(
        mean=float(r.mean()),
        t_statistic=float(t.statistic),
        p_value=float(t.pvalue),
        ci_low=float(ci[0, 0]),
        ci_high=float(ci[1, 0]),
        n=int(r.size),
    )


def adjust_pvalues(p_values: list[float], *, method: str = "bh", alpha: float = 0.05):
    """Return (reject flags, adjusted p-values) under Benjamini-Hochberg or Holm."""
    if method not in CORRECTIONS:
        raise ResearchInputError(f"unknown correction {method!r}; use {', '.join(CORRECTIONS)}")
    if not p_values:
        return [], []
    reject, adjusted, _, _ = multipletests(p_values, alpha=alpha, method=CORRECTIONS[method])
    return [bool(v) for v in reject], [float(v) for v in adjusted]


@dataclass(frozen=True, slots=True)
class SnoopingTest:
    """Reality Check and SPA p-values for 'the best strategy beats doing nothing'."""

    reality_check_p: float
    spa_p: float
    best: int
    best_mean: float


def _matrix(returns: np.ndarray) -> np.ndarray:
    m = np.asarray(returns, dtype=float)
    if m.ndim != 2 or m.shape[1] < 2 or m.shape[0] < 20:
        raise ResearchInputError("need a (periods x strategies) matrix, >= 20 x 2")
    if not np.isfinite(m).all():
        raise ResearchInputError("strategy returns contain NaN or infinite values")
    return m


def data_snooping_test(
    returns: np.ndarray, *, reps: int = 1000, block_size: int = 10, seed: int = 0
) -> SnoopingTest:
    """Run White's Reality Check and Hansen's SPA on a (periods x strategies) return matrix."""
    m = _matrix(returns)
    losses = -m
    benchmark = np.zeros(m.shape[0])
    out = {}
    for studentize in (False, True):
        spa = SPA(
            benchmark,
            losses,
            block_size=block_size,
            reps=reps,
            studentize=studentize,
            seed=np.random.default_rng(seed),
        )
        spa.compute()
        out[studentize] = spa.pvalues
    means = m.mean(axis=0)
    return SnoopingTest(
        # The Reality Check is the unstudentised test with the least favourable null ("upper").
        reality_check_p=float(out[False]["upper"]),
        spa_p=float(out[True]["consistent"]),
        best=int(np.argmax(means)),
        best_mean=float(means.max()),
    )


def pbo_cscv(returns: np.ndarray, *, blocks: int = 16) -> float:
    """Return the probability of backtest overfitting of picking the best in-sample Sharpe.

    Rows split into ``blocks`` contiguous blocks; every half of them is in-sample once, the
    rest out-of-sample; PBO is the share of splits where the in-sample winner ranks in the
    bottom half out-of-sample (relative rank logit <= 0).
    """
    m = _matrix(returns)
    if blocks < 2 or blocks % 2 or blocks > m.shape[0]:
        raise ResearchInputError("blocks must be even, >= 2 and <= the number of periods")
    parts = np.array_split(m, blocks)
    counts = np.array([p.shape[0] for p in parts], dtype=float)
    sums = np.stack([p.sum(axis=0) for p in parts])
    squares = np.stack([(p * p).sum(axis=0) for p in parts])
    total_n, total_s, total_q = counts.sum(), sums.sum(axis=0), squares.sum(axis=0)
    chosen = np.array(list(itertools.combinations(range(blocks), blocks // 2)))
    member = np.zeros((len(chosen), blocks))
    np.put_along_axis(member, chosen, 1.0, axis=1)
    n_in, s_in, q_in = member @ counts, member @ sums, member @ squares
    sharpe_in = _sharpe(n_in[:, None], s_in, q_in)
    sharpe_out = _sharpe(total_n - n_in[:, None], total_s - s_in, total_q - q_in)
    winner = np.argmax(sharpe_in, axis=1)
    winner_out = np.take_along_axis(sharpe_out, winner[:, None], axis=1)
    # Relative rank of the in-sample winner out of sample (1 = worst .. N = best).
    rank = (sharpe_out < winner_out).sum(axis=1) + 1
    omega = rank / (m.shape[1] + 1)
    return float(np.mean(np.log(omega / (1 - omega)) <= 0))


def pbo_walk_forward(returns: np.ndarray, *, blocks: int = 16) -> float:
    """Return the PBO of picking the best Sharpe so far, judged on the block that follows.

    The walk-forward counterpart of CSCV, in time order only: for k = 1 .. blocks - 1 the
    trials' Sharpe ratios over blocks [0, k) pick a winner, whose Sharpe in block k is ranked
    among all trials'; PBO is the share of steps where it lands in the bottom half (relative
    rank logit <= 0). Fewer splits than CSCV (blocks - 1), so a noisier estimate, but no split
    ever learns from the future.
    """
    m = _matrix(returns)
    if blocks < 2 or blocks > m.shape[0]:
        raise ResearchInputError("blocks must be >= 2 and <= the number of periods")
    parts = np.array_split(m, blocks)
    counts = np.array([p.shape[0] for p in parts], dtype=float)
    sums = np.stack([p.sum(axis=0) for p in parts])
    squares = np.stack([(p * p).sum(axis=0) for p in parts])
    below = []
    for k in range(1, blocks):
        sharpe_in = _sharpe(counts[:k].sum(), sums[:k].sum(axis=0), squares[:k].sum(axis=0))
        sharpe_out = _sharpe(counts[k], sums[k], squares[k])
        winner = int(np.argmax(sharpe_in))
        rank = (sharpe_out < sharpe_out[winner]).sum() + 1
        omega = rank / (m.shape[1] + 1)
        below.append(np.log(omega / (1 - omega)) <= 0)
    return float(np.mean(below))


def _sharpe(n: float, s: np.ndarray, q: np.ndarray) -> np.ndarray:
    mean = s / n
    var = np.maximum(q / n - mean * mean, 1e-300)
    return mean / np.sqrt(var)


def selection_report(returns: np.ndarray, *, blocks: int = 16) -> dict[str, float]:
    """Return PBO and the deflated Sharpe of the best full-sample strategy among the trials."""
    m = _matrix(returns)
    sd = m.std(axis=0, ddof=1)
    sharpes = np.divide(m.mean(axis=0), sd, out=np.zeros(m.shape[1]), where=sd > 0)
    best = int(np.argmax(sharpes))
    return {
        "pbo": pbo_cscv(m, blocks=blocks),
        "pbo_walk_forward": pbo_walk_forward(m, blocks=blocks),
        "best": best,
        "best_sharpe": float(sharpes[best]),
        "deflated_sharpe": float(deflated_sharpe(m[:, best], sharpes)),
        "trials": int(m.shape[1]),
    }
