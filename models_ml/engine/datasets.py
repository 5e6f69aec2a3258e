"""Supervised samples from a feature matrix: windows, forward targets, walk-forward splits, scaler.

A sample is identified by the row ``t`` its window ends at: inputs are feature rows
``t - window + 1 .. t`` (known at the close of bar t), targets use closes strictly after t:

* ``ret``: log return from close t to close t + horizon,
* ``direction``: 1.0 if that return is > 0 else 0.0,
* ``vol``: realised volatility sqrt(sum of squared one-bar log returns over t+1 .. t+horizon),
* ``next_ret``: the one-bar log return t -> t+1 (what a signal acted on at t earns next bar).

Walk-forward folds leave ``gap >= horizon`` samples between the last training and the first test
sample, so no training target overlaps the test period. Windows are read through a strided
``torch.unfold`` view: only a mini-batch of windows is ever materialised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from models_ml.engine.errors import DatasetError

if TYPE_CHECKING:
    import torch

# torch (seconds to import) is loaded by SequenceWindows, the only user here: make_targets and
# the window arithmetic serve optimisation runs that never train.

MIN_WINDOW = 2
MAX_WINDOW = 1000


@dataclass(frozen=True, slots=True)
class Targets:
    """Forward targets per row (NaN where the horizon runs past the data)."""

    horizon: int
    ret: np.ndarray
    direction: np.ndarray
    vol: np.ndarray
    next_ret: np.ndarray


def make_targets(close: np.ndarray, horizon: int) -> Targets:
    """Return forward return, direction and realised-volatility targets for every row."""
    if horizon < 1:
        raise DatasetError("horizon must be >= 1")
    log_c = np.log(np.asarray(close, dtype=float))
    n = len(log_c)
    r1 = np.full(n, np.nan)
    r1[:-1] = np.diff(log_c)  # r1[t] = log(c[t+1] / c[t])
    ret = np.full(n, np.nan)
    ret[: n - horizon] = log_c[horizon:] - log_c[: n - horizon]
    sq = np.concatenate([[0.0], np.cumsum(np.nan_to_num(r1) ** 2)])
    vol = np.full(n, np.nan)
    idx = np.arange(n - horizon)
    vol[idx] = np.sqrt(sq[idx + horizon] - sq[idx])
    direction = np.where(np.isnan(ret), np.nan, (ret > 0).astype(float))
    return Targets(horizon, ret, direction, vol, r1)


@dataclass(frozen=True, slots=True)
class WindowedData:
    """Raw features, targets and the rows at which a full window and its targets exist."""

    features: np.ndarray  # (n_rows, n_features) float64, NaN during warm-up
    feature_names: tuple[str, ...]
    index: pd.DatetimeIndex
    targets: Targets
    window: int
    ends: np.ndarray  # row of the last bar of each sample, consecutive and increasing

    @property
    def n_samples(self) -> int:
        """Return the number of samples."""
        return len(self.ends)

    @property
    def horizon(self) -> int:
        """Return the target horizon in bars."""
        return self.targets.horizon


def build_windowed(
    features: pd.DataFrame, close: np.ndarray | pd.Series, window: int, horizon: int
) -> WindowedData:
    """Return samples for every row with a complete feature window and defined targets."""
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise DatasetError(f"window must be in [{MIN_WINDOW}, {MAX_WINDOW}], got {window}")
    matrix = features.to_numpy(dtype=float)
    if len(close) != len(matrix):
        raise DatasetError("close and features must have the same length")
    complete = np.isfinite(matrix).all(axis=1)
    if not complete.any():
        raise DatasetError("no complete feature row (series shorter than the warm-up?)")
    first = int(np.argmax(complete))
    if not complete[first:].all():
        raise DatasetError("feature rows after warm-up contain NaN/inf")
    targets = make_targets(np.asarray(close, dtype=float), horizon)
    ends = np.arange(first + window - 1, len(matrix) - horizon)
    if len(ends) == 0:
        raise DatasetError("not enough rows for one window plus its horizon")
    names = tuple(str(c) for c in features.columns)
    index = pd.DatetimeIndex(features.index)
    return WindowedData(matrix, names, index, targets, window, ends)


class SequenceWindows:
    """Scaled feature windows for samples, read on demand from a strided view (no N*L*F copy)."""

    __slots__ = ("_rows", "_view", "ends", "window")

    def __init__(self, scaled: np.ndarray, ends: np.ndarray, window: int) -> None:
        if len(ends) and (ends.min() < window - 1 or ends.max() >= len(scaled)):
            raise DatasetError("window ends out of range")
        import torch

        self._rows = torch.as_tensor(np.ascontiguousarray(scaled, dtype=np.float32))
        self._view = self._rows.unfold(0, window, 1)  # (rows - window + 1, features, window)
        self.ends = ends
        self.window = window

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def nbytes(self) -> int:
        """Return the bytes of the underlying scaled matrix (windows are views into it)."""
        return self._view.untyped_storage().nbytes()

    def batch(self, positions: np.ndarray) -> torch.Tensor:
        """Return the windows of samples at ``positions`` as a (batch, window, features) tensor."""
        import torch

        starts = torch.as_tensor(self.ends[positions] - self.window + 1)
        return self._view[starts].transpose(1, 2).contiguous()

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Return the scaled feature rows ``start .. stop - 1`` as a (rows, features) view."""
        return self._rows[start:stop]

    def last_rows(self, positions: np.ndarray) -> np.ndarray:
        """Return the last-step feature vector of each sample (for flat baselines)."""
        import torch

        return self._view[torch.as_tensor(self.ends[positions] - self.window + 1), :, -1].numpy()


@dataclass(frozen=True, slots=True)
class Fold:
    """One walk-forward fold: sample positions (into ``WindowedData.ends``) to train and test."""

    index: int
    train: np.ndarray
    test: np.ndarray


def walk_forward_splits(
    n_samples: int,
    n_folds: int,
    *,
    gap: int,
    test_size: int | None = None,
    mode: Literal["expanding", "rolling"] = "expanding",
    train_size: int | None = None,
    min_train: int = 1,
) -> list[Fold]:
    """Return consecutive test blocks at the end, each after its training block and a gap."""
    if n_folds < 1 or gap < 0:
        raise DatasetError("n_folds must be >= 1 and gap >= 0")
    test_size = test_size or n_samples // (n_folds + 1)
    first_test = n_samples - n_folds * test_size
    if test_size < 1 or first_test - gap < min_train:
        raise DatasetError(
            f"{n_samples} samples cannot hold {n_folds} folds of {test_size} after a gap of {gap}"
        )
    if mode == "rolling" and not train_size:
        raise DatasetError("rolling mode needs train_size")
    folds = []
    for i in range(n_folds):
        start = first_test + i * test_size
        train_end = start - gap
        train_start = max(0, train_end - train_size) if mode == "rolling" else 0
        test = np.arange(start, start + test_size)
        folds.append(Fold(i, np.arange(train_start, train_end), test))
    return folds


def holdout_split(
    positions: np.ndarray, fraction: float, gap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split training positions into (fit, validation): the last ``fraction`` after a gap."""
    if not 0.0 < fraction < 1.0:
        raise DatasetError("validation fraction must be in (0, 1)")
    n_val = max(1, int(round(len(positions) * fraction)))
    n_fit = len(positions) - n_val - gap
    if n_fit < 1:
        raise DatasetError("not enough training samples for a validation split")
    return positions[:n_fit], positions[n_fit + gap :]


def assert_no_overlap(data: WindowedData, fold: Fold) -> None:
    """Raise DatasetError if a training target reaches the first test sample's bar."""
    if len(fold.train) == 0 or len(fold.test) == 0:
        return
    last_target_row = data.ends[fold.train.max()] + data.horizon
    if last_target_row >= data.ends[fold.test.min()]:
        raise DatasetError(f"fold {fold.index}: training targets overlap the test period")


class StandardScaler:
    """Per-feature standardisation (numpy); fit on training rows only."""

    __slots__ = ("mean", "scale")

    def __init__(self, mean: np.ndarray | None = None, scale: np.ndarray | None = None) -> None:
        self.mean = mean
        self.scale = scale

    def fit(self, x: np.ndarray) -> StandardScaler:
        """Learn mean and standard deviation of each column (constant columns scale by 1)."""
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or len(x) == 0 or not np.isfinite(x).all():
            raise DatasetError("scaler needs a non-empty finite 2-D array")
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.scale = np.where(std > 0, std, 1.0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Return standardised values as float32 (NaN stays NaN)."""
        if self.mean is None or self.scale is None:
            raise DatasetError("scaler is not fitted")
        return ((np.asarray(x, dtype=float) - self.mean) / self.scale).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        """Return a JSON-ready dict (floats survive the JSON round trip exactly)."""
        if self.mean is None or self.scale is None:
            raise DatasetError("scaler is not fitted")
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StandardScaler:
        """Rebuild from ``to_dict`` output."""
        return cls(np.asarray(data["mean"], dtype=float), np.asarray(data["scale"], dtype=float))


def training_rows(data: WindowedData, positions: np.ndarray) -> np.ndarray:
    """Return the feature rows the windows of these samples cover (what a scaler may see)."""
    ends = data.ends[positions]
    return data.features[ends.min() - data.window + 1 : ends.max() + 1]


def fit_scaler(data: WindowedData, positions: np.ndarray) -> StandardScaler:
    """Fit a scaler on the rows covered by the training samples only."""
    return StandardScaler().fit(training_rows(data, positions))


def scaled_windows(data: WindowedData, scaler: StandardScaler) -> SequenceWindows:
    """Return windows over the whole matrix standardised with ``scaler`` (warm-up rows as 0)."""
    scaled = scaler.transform(data.features)
    np.nan_to_num(scaled, copy=False, nan=0.0)  # warm-up rows are never inside a sample window
    return SequenceWindows(scaled, data.ends, data.window)
