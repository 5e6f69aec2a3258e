"""Out-of-sample evaluation of walk-forward predictions next to baselines, with a significance test.

Only test-fold predictions are scored. Each metric is reported for the model and, on exactly the
same samples, for four baselines: ``always_long``, ``previous_sign`` (up if the last bar rose),
``logistic`` (L2 logistic regression on the last-step scaled features, fitted on the fold's
training samples) and ``random`` (seeded coin). Baseline probabilities come from the fold's
training data: the up-rate for always-long, the conditional up-rates for previous-sign.

Trading: the signal at bar t sets the position held over bar t -> t+1 (``long_flat``: 1 if up else
0; ``long_short``: +1/-1), fees are ``fee_bps`` per unit of position change, each fold starts flat.
The Sharpe ratio is mean/std of per-bar net returns times sqrt(periods_per_year).

Significance: one-sided exact binomial test of the hit count against 0.5 and against the best
baseline's accuracy. With a horizon k > 1 consecutive targets overlap, so the test uses n / k
effective trials (conservative). ``has_edge`` needs both p-values below ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from models_ml.engine.datasets import WindowedData
from models_ml.engine.errors import TrainingError
from models_ml.engine.training import FoldResult

Position = Literal["long_flat", "long_short"]
BASELINES = ("always_long", "previous_sign", "logistic", "random")


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Return the ROC AUC (Mann-Whitney with tied scores averaged); NaN with one class only."""
    y = np.asarray(y, dtype=bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(
        np.asarray(score, dtype=float), return_inverse=True, return_counts=True
    )
    upper = np.cumsum(counts)
    mid_ranks = upper - (counts - 1) / 2.0  # 1-based average rank of each tied group
    rank_sum = mid_ranks[inverse][y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(y: np.ndarray, prob: np.ndarray, eps: float = 1e-7) -> float:
    """Return the mean binary cross-entropy with probabilities clipped to [eps, 1 - eps]."""
    p = np.clip(np.asarray(prob, dtype=float), eps, 1.0 - eps)
    y = np.asarray(y, dtype=float)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))


def binomial_p_value(successes: int, trials: int, p0: float = 0.5) -> float:
    """Return P(X >= successes) for X ~ Binomial(trials, p0) (exact, one-sided)."""
    if trials <= 0 or successes <= 0:
        return 1.0
    if successes > trials:
        raise ValueError("successes > trials")
    if p0 <= 0.0:
        return 0.0
    if p0 >= 1.0:
        return 1.0 if successes == trials else 0.0
    log_p, log_q = math.log(p0), math.log1p(-p0)
    base = math.lgamma(trials + 1)
    terms = np.array(
        [
            base
            - math.lgamma(i + 1)
            - math.lgamma(trials - i + 1)
            + i * log_p
            + (trials - i) * log_q
            for i in range(successes, trials + 1)
        ]
    )
    top = terms.max()
    return float(min(1.0, math.exp(top) * np.exp(terms - top).sum()))


def strategy_returns(
    up: np.ndarray, next_ret: np.ndarray, fee_bps: float, position: Position = "long_flat"
) -> np.ndarray:
    """Return per-bar net simple returns of holding the signal's position over the next bar."""
    up = np.asarray(up, dtype=bool)
    pos = up.astype(float) if position == "long_flat" else np.where(up, 1.0, -1.0)
    turnover = np.abs(np.diff(pos, prepend=0.0))
    return pos * np.expm1(np.asarray(next_ret, dtype=float)) - turnover * fee_bps / 1e4


def sharpe_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """Return the annualised Sharpe ratio of per-period returns (0 if they do not vary)."""
    returns = np.asarray(returns, dtype=float)
    if len(returns) < 2:
        return 0.0
    std = returns.std(ddof=1)
    return 0.0 if std == 0 else float(returns.mean() / std * math.sqrt(periods_per_year))


class LogisticRegression:
    """L2-regularised logistic regression fitted by Newton's method (IRLS), numpy only."""

    __slots__ = ("l2", "max_iter", "tol", "weights")

    def __init__(self, l2: float = 1e-2, max_iter: int = 50, tol: float = 1e-8) -> None:
        self.l2, self.max_iter, self.tol = l2, max_iter, tol
        self.weights: np.ndarray | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticRegression:
        """Minimise mean log loss + l2/2 * |w|^2 (the intercept is not penalised)."""
        xb = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=float)])
        y = np.asarray(y, dtype=float)
        penalty = np.full(xb.shape[1], self.l2)
        penalty[0] = 1e-12
        w = np.zeros(xb.shape[1])
        for _ in range(self.max_iter):
            p = _sigmoid(xb @ w)
            grad = xb.T @ (p - y) / len(y) + penalty * w
            hess = (xb.T * (p * (1.0 - p))) @ xb / len(y) + np.diag(penalty)
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < self.tol:
                break
        self.weights = w
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Return P(y = 1) for each row."""
        if self.weights is None:
            raise TrainingError("logistic regression is not fitted")
        return _sigmoid(self.weights[0] + np.asarray(x, dtype=float) @ self.weights[1:])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Return the logistic function, overflow-safe."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True, slots=True)
class EvaluationConfig:
    """How signals are traded and judged."""

    fee_bps: float = 10.0
    periods_per_year: float = 525_600.0  # 1-minute bars, 24/7
    position: Position = "long_flat"
    alpha: float = 0.01
    seed: int = 0


@dataclass(frozen=True, slots=True)
class DirectionalMetrics:
    """Scores of one predictor on a set of out-of-sample samples."""

    n: int
    accuracy: float
    auc: float
    log_loss: float
    mse: float  # of the predicted horizon return; NaN when the predictor has none
    sharpe: float
    mean_return_bps: float  # mean net per-bar return of the trading rule

    def as_dict(self) -> dict[str, float]:
        """Return a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Signals:
    """A predictor's outputs on the evaluated samples."""

    prob: np.ndarray
    up: np.ndarray
    ret_pred: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """Model and baselines on the same out-of-sample samples, and whether the model has an edge."""

    model: DirectionalMetrics
    baselines: dict[str, DirectionalMetrics]
    best_baseline: str
    p_value_vs_chance: float
    p_value_vs_best_baseline: float
    has_edge: bool
    per_fold: list[dict[str, Any]] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """Return 'edge' or 'no edge'."""
        return "edge" if self.has_edge else "no edge"

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (for MLModel.metrics / TrainingRun.metrics)."""
        return {
            "model": self.model.as_dict(),
            "baselines": {k: v.as_dict() for k, v in self.baselines.items()},
            "best_baseline": self.best_baseline,
            "p_value_vs_chance": self.p_value_vs_chance,
            "p_value_vs_best_baseline": self.p_value_vs_best_baseline,
            "has_edge": self.has_edge,
            "verdict": self.verdict,
            "per_fold": self.per_fold,
        }


def score(
    signals: Signals, data: WindowedData, rows: np.ndarray, cfg: EvaluationConfig
) -> DirectionalMetrics:
    """Return the metrics of ``signals`` made at feature rows ``rows``."""
    t = data.targets
    y = t.direction[rows]
    pnl = _fold_pnl(signals.up, t.next_ret[rows], rows, cfg)
    mse = float("nan")
    if signals.ret_pred is not None:
        mse = float(np.mean((signals.ret_pred - t.ret[rows]) ** 2))
    return DirectionalMetrics(
        n=len(rows),
        accuracy=float(np.mean(signals.up == (y > 0.5))),
        auc=roc_auc(y, signals.prob),
        log_loss=log_loss(y, signals.prob),
        mse=mse,
        sharpe=sharpe_ratio(pnl, cfg.periods_per_year),
        mean_return_bps=float(pnl.mean() * 1e4) if len(pnl) else 0.0,
    )


def _fold_pnl(
    up: np.ndarray, next_ret: np.ndarray, rows: np.ndarray, cfg: EvaluationConfig
) -> np.ndarray:
    """Return trading returns, restarting flat wherever rows are not consecutive (new fold)."""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    parts = zip(np.split(up, breaks), np.split(next_ret, breaks), strict=True)
    return np.concatenate([strategy_returns(u, r, cfg.fee_bps, cfg.position) for u, r in parts])


def baseline_signals(
    data: WindowedData, fold: FoldResult, rng: np.random.Generator
) -> dict[str, Signals]:
    """Return every baseline's signals on a fold's test samples, fitted on its training samples."""
    t = data.targets
    train_rows = data.ends[fold.fold.train]
    test_rows = fold.rows
    y_train = t.direction[train_rows]
    base_rate = float(np.clip(y_train.mean(), 0.01, 0.99))
    n = len(test_rows)
    # Previous bar's return r_t = log(c_t / c_{t-1}) = next_ret[t - 1].
    prev_up_train, prev_up_test = t.next_ret[train_rows - 1] > 0, t.next_ret[test_rows - 1] > 0
    p_up_after_up = _rate(y_train[prev_up_train], base_rate)
    p_up_after_down = _rate(y_train[~prev_up_train], base_rate)
    x_train = _last_step(data, fold, train_rows)
    logistic = LogisticRegression().fit(x_train, y_train)
    p_log = logistic.predict_proba(_last_step(data, fold, test_rows))
    p_rand = rng.uniform(size=n)
    mean_ret = float(np.mean(t.ret[train_rows]))
    return {
        "always_long": Signals(np.full(n, base_rate), np.ones(n, dtype=bool), np.full(n, mean_ret)),
        "previous_sign": Signals(
            np.where(prev_up_test, p_up_after_up, p_up_after_down), prev_up_test
        ),
        "logistic": Signals(p_log, p_log > 0.5),
        "random": Signals(p_rand, p_rand > 0.5),
    }


def _rate(y: np.ndarray, default: float) -> float:
    """Return the clipped mean of y, or ``default`` when y is empty."""
    return float(np.clip(y.mean(), 0.01, 0.99)) if len(y) else default


def _last_step(data: WindowedData, fold: FoldResult, rows: np.ndarray) -> np.ndarray:
    """Return the fold-scaled feature vectors at ``rows``."""
    return fold.scaler.transform(data.features[rows]).astype(float)


def evaluate_walk_forward(
    data: WindowedData, folds: Sequence[FoldResult], config: EvaluationConfig | None = None
) -> EvaluationReport:
    """Score the model's out-of-sample predictions and the baselines on the same samples."""
    cfg = config or EvaluationConfig()
    if not folds:
        raise TrainingError("no folds to evaluate")
    rng = np.random.default_rng(cfg.seed)
    per_baseline: dict[str, list[Signals]] = {name: [] for name in BASELINES}
    per_fold = []
    for fold in folds:
        for name, signals in baseline_signals(data, fold, rng).items():
            per_baseline[name].append(signals)
        fold_metrics = score(_model_signals([fold]), data, fold.rows, cfg)
        per_fold.append(
            {"fold": fold.fold.index, "n_train": len(fold.fold.train), **fold_metrics.as_dict()}
        )
    rows = np.concatenate([f.rows for f in folds])
    model = score(_model_signals(folds), data, rows, cfg)
    baselines = {
        name: score(_concat(parts), data, rows, cfg) for name, parts in per_baseline.items()
    }
    return _judge(model, baselines, data.horizon, cfg, per_fold)


def _model_signals(folds: Sequence[FoldResult]) -> Signals:
    """Return the concatenated model signals of folds."""
    prob = np.concatenate([f.prob for f in folds])
    return Signals(prob, prob > 0.5, np.concatenate([f.ret_pred for f in folds]))


def _concat(parts: list[Signals]) -> Signals:
    """Concatenate per-fold signals."""
    rets = [p.ret_pred for p in parts]
    ret_pred = None if any(r is None for r in rets) else np.concatenate(rets)
    return Signals(
        np.concatenate([p.prob for p in parts]), np.concatenate([p.up for p in parts]), ret_pred
    )


def _judge(
    model: DirectionalMetrics,
    baselines: dict[str, DirectionalMetrics],
    horizon: int,
    cfg: EvaluationConfig,
    per_fold: list[dict[str, Any]],
) -> EvaluationReport:
    """Attach binomial p-values (vs 0.5 and vs the best baseline) and the edge verdict."""
    best = max(baselines, key=lambda name: baselines[name].accuracy)
    n_eff = max(1, model.n // horizon)
    hits = int(round(model.accuracy * n_eff))
    p_chance = binomial_p_value(hits, n_eff, 0.5)
    p_best = binomial_p_value(hits, n_eff, max(0.5, baselines[best].accuracy))
    edge = p_chance < cfg.alpha and p_best < cfg.alpha
    return EvaluationReport(model, baselines, best, p_chance, p_best, edge, per_fold)
