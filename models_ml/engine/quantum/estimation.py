"""Inputs of the selection problems estimated from data: return moments and feature scores."""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.feature_selection import mutual_info_regression

from models_ml.engine.quantum.errors import OptimizationError

MIN_OBSERVATIONS = 10


def log_returns(closes: np.ndarray) -> np.ndarray:
    """Return per-bar log returns of a (bars x assets) close matrix."""
    closes = np.asarray(closes, dtype=float)
    if closes.ndim != 2 or closes.shape[0] < 2:
        raise OptimizationError("closes must be a (bars x assets) matrix with >= 2 bars")
    if not np.all(np.isfinite(closes)) or np.any(closes <= 0):
        raise OptimizationError("closes must be finite and positive")
    return np.diff(np.log(closes), axis=0)


def return_moments(
    closes: np.ndarray, predicted: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return mean log return per bar and its Ledoit-Wolf shrunk covariance.

    ``predicted`` (one expected return per asset, e.g. from a model) replaces the sample mean,
    which is the noisiest of the two estimates.
    """
    returns = log_returns(closes)
    if returns.shape[0] < MIN_OBSERVATIONS:
        raise OptimizationError(
            f"need at least {MIN_OBSERVATIONS + 1} bars per symbol, got {returns.shape[0] + 1}"
        )
    sigma = LedoitWolf().fit(returns).covariance_
    mu = returns.mean(axis=0)
    if predicted is not None:
        predicted = np.asarray(predicted, dtype=float)
        if predicted.shape != mu.shape or not np.all(np.isfinite(predicted)):
            raise OptimizationError(f"predicted returns must be {len(mu)} finite numbers")
        mu = predicted
    return mu, sigma


def feature_scores(
    features: np.ndarray, target: np.ndarray, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return each feature's mutual information with the target and |correlation| between pairs."""
    x = np.asarray(features, dtype=float)
    y = np.asarray(target, dtype=float)
    keep = np.all(np.isfinite(x), axis=1) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.shape[0] < MIN_OBSERVATIONS or x.shape[1] < 2:
        raise OptimizationError(
            f"need >= {MIN_OBSERVATIONS} complete rows and >= 2 features, got {x.shape}"
        )
    relevance = mutual_info_regression(x, y, random_state=seed)
    std = x.std(axis=0)
    # A constant feature carries nothing and correlates with nothing.
    safe = np.where(std > 0, std, 1.0)
    z = (x - x.mean(axis=0)) / safe
    redundancy = np.abs(z.T @ z / len(z))
    redundancy[:, std == 0] = 0.0
    redundancy[std == 0, :] = 0.0
    return relevance, redundancy
