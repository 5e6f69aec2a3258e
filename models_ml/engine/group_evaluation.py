"""Each feature group's out-of-sample contribution beside the price-only model (walk-forward).

For the price-only feature set, price plus each group, and price plus every group, the same
walk-forward folds (test blocks at the end, a gap of ``horizon`` samples before each) fit an L2
logistic regression on the standardised features of the training rows and score the test rows
(direction over ``horizon`` bars). All sets are judged on the same test rows: the rows where every
set has a complete feature row. Beside them: the naive baselines on those rows (always long at
the training up-rate, previous bar's sign). A group whose inputs are missing on most bars is
flagged; its "contribution" then measures nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from models_ml.engine.datasets import make_targets, walk_forward_splits
from models_ml.engine.errors import DatasetError
from models_ml.engine.evaluation import LogisticRegression, log_loss, roc_auc
from models_ml.engine.features import EXTRA_GROUPS, FeatureConfig, FeatureSet

MIN_COVERAGE = 0.5  # below this share of bars with the group's data, its figures are flagged


@dataclass(frozen=True, slots=True)
class GroupScore:
    """Out-of-sample figures of one feature set."""

    features: str
    n_features: int
    accuracy: float
    auc: float
    log_loss: float
    delta_accuracy: float  # minus the price-only set's, on the same rows
    delta_auc: float
    coverage: float  # share of bars whose inputs for the group were observed (1 for price)
    flagged: bool


def coverage(frame: pd.DataFrame, extras: Sequence[str]) -> float:
    """Return the share of bars where every input column of ``extras`` was observed."""
    columns = [c for g in extras for c in EXTRA_GROUPS[g]]
    if not columns:
        return 1.0
    if any(c not in frame.columns for c in columns):
        return 0.0
    observed = frame[columns].notna().all(axis=1)
    if any(c in ("buy_volume", "sell_volume") for c in columns):
        observed &= (frame.get("buy_volume", 0) + frame.get("sell_volume", 0)) > 0
    return float(observed.mean()) if len(frame) else 0.0


def evaluate_feature_groups(
    frame: pd.DataFrame,
    group_extras: Mapping[str, Sequence[str]],
    *,
    horizon: int = 1,
    folds: int = 5,
    config: FeatureConfig | None = None,
) -> dict:
    """Return the walk-forward report: each set's scores and the naive baselines' (see module)."""
    sets = {"price": ()}
    for group, extras in group_extras.items():
        if group != "price":
            sets[f"price+{group}"] = tuple(extras)
    if len(sets) > 2:
        sets["all"] = tuple(sorted({e for extras in sets.values() for e in extras}))
    matrices = {
        name: FeatureSet(config, extras).compute(frame).to_numpy() for name, extras in sets.items()
    }
    complete = np.all([np.isfinite(m).all(axis=1) for m in matrices.values()], axis=0)
    targets = make_targets(frame["close"].to_numpy(dtype=float), horizon)
    rows = np.flatnonzero(complete & np.isfinite(targets.direction))
    if len(rows) < 10 * (folds + 1):
        raise DatasetError(f"{len(rows)} complete rows are too few for {folds} folds")
    splits = walk_forward_splits(len(rows), folds, gap=horizon)
    y = targets.direction[rows]
    test = np.concatenate([f.test for f in splits])
    scores = {name: _walk_forward(m[rows], y, splits) for name, m in matrices.items()}
    price = scores["price"]
    report = []
    for name, prob in scores.items():
        extras = sets[name]
        cover = coverage(frame, extras)
        acc, auc = _accuracy(y[test], prob), roc_auc(y[test], prob)
        report.append(
            GroupScore(
                features=name,
                n_features=matrices[name].shape[1],
                accuracy=acc,
                auc=auc,
                log_loss=log_loss(y[test], prob),
                delta_accuracy=acc - _accuracy(y[test], price),
                delta_auc=auc - roc_auc(y[test], price),
                coverage=cover,
                flagged=cover < MIN_COVERAGE,
            )
        )
    return {
        "horizon": horizon,
        "folds": folds,
        "test_rows": int(len(test)),
        "sets": [asdict(s) for s in report],
        "baselines": _baselines(frame, rows, y, splits),
    }


def _walk_forward(x: np.ndarray, y: np.ndarray, splits) -> np.ndarray:
    """Return the test-row probabilities of every fold, in fold order."""
    out = []
    for fold in splits:
        train = x[fold.train]
        mean, std = train.mean(axis=0), train.std(axis=0)
        std[std == 0] = 1.0
        model = LogisticRegression().fit((train - mean) / std, y[fold.train])
        out.append(model.predict_proba((x[fold.test] - mean) / std))
    return np.concatenate(out)


def _accuracy(y: np.ndarray, prob: np.ndarray) -> float:
    return float(np.mean((prob > 0.5) == (y > 0.5)))


def _baselines(frame: pd.DataFrame, rows: np.ndarray, y: np.ndarray, splits) -> dict:
    """Always long at the training up-rate, and the previous bar's direction."""
    close = frame["close"].to_numpy(dtype=float)
    prev = np.r_[np.nan, np.diff(np.log(close))][rows]
    long_prob, prev_prob, truth = [], [], []
    for fold in splits:
        rate = float(y[fold.train].mean())
        long_prob.append(np.full(len(fold.test), rate))
        prev_prob.append(np.where(prev[fold.test] > 0, 1.0, 0.0))
        truth.append(y[fold.test])
    t = np.concatenate(truth)
    always = np.concatenate(long_prob)
    previous = np.concatenate(prev_prob)
    return {
        "always_long": {"accuracy": float(np.mean(t == 1.0)), "log_loss": log_loss(t, always)},
        "previous_sign": {"accuracy": _accuracy(t, previous), "auc": roc_auc(t, previous)},
    }
