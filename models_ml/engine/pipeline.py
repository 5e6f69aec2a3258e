"""One call from a bars frame to an evaluated, saveable model (what ``manage.py train`` runs).

features -> windows/targets -> walk-forward folds (gap >= horizon) -> optional hyperparameter
search on the first fold's training samples -> per-fold training and out-of-sample predictions ->
evaluation next to baselines -> a final network trained on every sample -> ``save``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from torch import nn

from models_ml.engine.datasets import (
    StandardScaler,
    WindowedData,
    build_windowed,
    walk_forward_splits,
)
from models_ml.engine.errors import DatasetError
from models_ml.engine.evaluation import EvaluationConfig, EvaluationReport, evaluate_walk_forward
from models_ml.engine.features import FeatureConfig, FeatureSet
from models_ml.engine.networks import resolve_hparams
from models_ml.engine.registry import ModelSpec, save_artifact
from models_ml.engine.training import (
    EpochCallback,
    FitResult,
    FoldResult,
    SearchResult,
    TrainConfig,
    search_hyperparameters,
    split_search_params,
    train_on_positions,
    walk_forward,
)


@dataclass(frozen=True, slots=True)
class TrainingSpec:
    """What to train and how to validate it."""

    kind: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    window: int = 64
    horizon: int = 1
    n_folds: int = 3
    fold_mode: Literal["expanding", "rolling"] = "expanding"
    train_size: int | None = None  # rolling mode only
    gap: int | None = None  # defaults to the horizon; never less
    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    extras: Sequence[str] | None = None  # None: every extra group the frame has columns for
    columns: Sequence[str] | None = None  # None: every feature; else only these (same warm-up)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    search_space: Mapping[str, Sequence[Any]] | None = None
    search_method: Literal["random", "grid"] = "random"
    search_iter: int = 6


@dataclass(slots=True)
class TrainingOutcome:
    """Everything a training run produced."""

    spec: TrainingSpec
    feature_set: FeatureSet
    data: WindowedData
    hparams: dict[str, Any]
    train_config: TrainConfig
    folds: list[FoldResult]
    report: EvaluationReport
    final: FitResult
    scaler: StandardScaler
    search: SearchResult | None = None

    @property
    def network(self) -> nn.Module:
        """Return the final network (trained on every sample)."""
        return self.final.network

    def model_spec(self, metadata: Mapping[str, Any] | None = None) -> ModelSpec:
        """Return the artifact spec of the final network."""
        meta = {
            "metrics": self.report.as_dict(),
            "train": self.train_config.to_dict(),
            **(metadata or {}),
        }
        return ModelSpec(
            kind=self.spec.kind,
            hparams=self.hparams,
            feature_set=self.feature_set,
            window=self.spec.window,
            horizon=self.spec.horizon,
            return_scale=self.final.return_scale,
            scaler=self.scaler,
            metadata=_json_safe(meta),
        )

    def save(
        self, directory: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
    ) -> str:
        """Save the final network as an artifact and return the weights' SHA-256."""
        return save_artifact(directory, self.network, self.model_spec(metadata))


def run_training(
    bars: pd.DataFrame,
    spec: TrainingSpec,
    *,
    on_epoch: EpochCallback | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> TrainingOutcome:
    """Train, walk-forward evaluate and fit the final model on one symbol's bars."""
    if spec.extras is None:
        fs = FeatureSet.for_frame(bars, spec.feature_config)
    else:
        fs = FeatureSet(spec.feature_config, spec.extras)
    fs = fs.select(spec.columns)
    features = fs.compute(bars)
    data = build_windowed(features, bars["close"].to_numpy(dtype=float), spec.window, spec.horizon)
    gap = max(spec.gap or 0, spec.horizon)
    folds = walk_forward_splits(
        data.n_samples, spec.n_folds, gap=gap, mode=spec.fold_mode, train_size=spec.train_size
    )
    hparams, cfg, search = _choose_hparams(data, spec, folds[0].train)

    def fold_done(result: FoldResult) -> None:
        """Report the share of trainings done (folds plus the final fit)."""
        if on_progress is not None:
            on_progress((result.fold.index + 1) / (len(folds) + 1))

    results = walk_forward(
        data, spec.kind, hparams, folds, cfg, on_epoch=on_epoch, on_fold=fold_done
    )
    report = evaluate_walk_forward(data, results, spec.evaluation)
    final, scaler, _ = train_on_positions(
        data, spec.kind, hparams, np.arange(data.n_samples), cfg, fold=len(folds), on_epoch=on_epoch
    )
    if on_progress is not None:
        on_progress(1.0)
    return TrainingOutcome(spec, fs, data, hparams, cfg, results, report, final, scaler, search)


def _choose_hparams(
    data: WindowedData, spec: TrainingSpec, positions: np.ndarray
) -> tuple[dict[str, Any], TrainConfig, SearchResult | None]:
    """Return the hyperparameters and train config to use, searched on ``positions`` if asked."""
    hparams = resolve_hparams(spec.kind, spec.hparams)
    if not spec.search_space:
        return hparams, spec.train, None
    search = search_hyperparameters(
        data,
        spec.kind,
        spec.search_space,
        positions,
        spec.train,
        method=spec.search_method,
        n_iter=spec.search_iter,
        base_hparams=hparams,
    )
    net_params, train_params = split_search_params(search.best_params)
    return {**hparams, **net_params}, replace(spec.train, **train_params), search


def _json_safe(value: Any) -> Any:
    """Return value with NaN/inf floats replaced by None (artifact JSON forbids them)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if value is not None and not isinstance(value, str | int | bool):
        raise DatasetError(f"metadata value {value!r} is not JSON-serialisable")
    return value
