"""Training: AdamW with early stopping, walk-forward folds, seeded hyperparameter search.

Loss = BCE(direction logit) + ``return_weight`` * MSE(return head, return / return_scale), where
``return_scale`` is the standard deviation of the fit-split returns (so both terms are O(1)).
Early stopping watches that loss on a validation split taken from the *end* of each training fold
(after a gap of ``horizon`` samples); the best epoch's weights are kept. Seeds: torch and numpy are
seeded from ``TrainConfig.seed`` before a network is built and before each fit, so a run is
reproducible on the same machine and torch build.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from models_ml.engine.datasets import (
    Fold,
    SequenceWindows,
    StandardScaler,
    Targets,
    WindowedData,
    assert_no_overlap,
    fit_scaler,
    holdout_split,
    scaled_windows,
)
from models_ml.engine.errors import TrainingError
from models_ml.engine.networks import TemporalCNN, build_network, resolve_hparams

Clock = Callable[[], float]

# Windows per forward pass when predicting: small batches keep the activations in cache and below
# glibc's heap-trim threshold (2048 ran the Transformer ~1.5x slower, mostly in page faults).
PREDICT_CHUNK = 128
SERIES_CHUNK = 8192  # window ends per convolution over the series (temporal CNN)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Optimiser, early-stopping and reproducibility settings."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 4
    val_fraction: float = 0.2
    return_weight: float = 0.5
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"
    progress: bool = False
    # torch intra-op threads (process-wide) set before training; None leaves torch's choice. On a
    # small shared machine 1 is several times faster than spinning OpenMP workers.
    num_threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EpochMetrics:
    """What one epoch achieved (for TrainingRun.epochs)."""

    fold: int
    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    seconds: float
    best: bool

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


EpochCallback = Callable[[EpochMetrics], None]


@dataclass(slots=True)
class FitResult:
    """A trained network (best epoch's weights) and how training went."""

    network: nn.Module
    history: list[EpochMetrics]
    best_epoch: int
    best_val_loss: float
    return_scale: float
    stopped_early: bool


@dataclass(slots=True)
class FoldResult:
    """Out-of-sample predictions of one walk-forward fold."""

    fold: Fold
    rows: np.ndarray  # feature row (bar) each prediction is made at
    ts: pd.DatetimeIndex
    prob: np.ndarray  # P(up over the horizon)
    ret_pred: np.ndarray  # predicted log return over the horizon
    scaler: StandardScaler
    fit: FitResult


@dataclass(frozen=True, slots=True)
class Trial:
    """One hyperparameter candidate and its validation loss."""

    params: dict[str, Any]
    val_loss: float
    best_epoch: int


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The best candidate of a search and every trial."""

    best_params: dict[str, Any]
    trials: tuple[Trial, ...] = field(default=())


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and numpy's legacy global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def new_network(
    kind: str, n_features: int, hparams: Mapping[str, Any], config: TrainConfig
) -> nn.Module:
    """Build a network with weights drawn from ``config.seed``."""
    seed_everything(config.seed)
    return build_network(kind, n_features, device=config.device, **dict(hparams))


def _loss(
    net: nn.Module,
    x: torch.Tensor,
    y_dir: torch.Tensor,
    y_ret: torch.Tensor,
    return_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (loss, logits) of a batch."""
    logit, ret = net(x)
    bce = nn.functional.binary_cross_entropy_with_logits(logit, y_dir)
    return bce + return_weight * nn.functional.mse_loss(ret, y_ret), logit


@dataclass(slots=True)
class _Batches:
    """Targets of one split on the training device and a way to draw its windows."""

    windows: SequenceWindows
    positions: np.ndarray
    y_dir: torch.Tensor
    y_ret: torch.Tensor
    device: str

    @classmethod
    def of(
        cls,
        windows: SequenceWindows,
        targets: Targets,
        positions: np.ndarray,
        scale: float,
        device: str,
    ) -> _Batches:
        """Collect the targets of ``positions``."""
        rows = windows.ends[positions]
        y_dir = torch.as_tensor(targets.direction[rows], dtype=torch.float32, device=device)
        y_ret = torch.as_tensor(targets.ret[rows] / scale, dtype=torch.float32, device=device)
        return cls(windows, positions, y_dir, y_ret, device)

    def iterate(self, batch_size: int, rng: np.random.Generator | None):
        """Yield (x, y_dir, y_ret) mini-batches, shuffled when ``rng`` is given."""
        order = (
            rng.permutation(len(self.positions))
            if rng is not None
            else np.arange(len(self.positions))
        )
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            x = self.windows.batch(self.positions[idx]).to(self.device)
            yield x, self.y_dir[idx], self.y_ret[idx]


def _train_epoch(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    data: _Batches,
    cfg: TrainConfig,
    rng: np.random.Generator,
) -> float:
    """Run one optimisation pass and return the mean training loss."""
    net.train()
    total, count = 0.0, 0
    for x, y_dir, y_ret in data.iterate(cfg.batch_size, rng):
        opt.zero_grad(set_to_none=True)
        loss, _ = _loss(net, x, y_dir, y_ret, cfg.return_weight)
        if not torch.isfinite(loss):
            raise TrainingError("training loss is not finite (diverged)")
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        total += loss.item() * len(x)
        count += len(x)
    return total / count


def _validate(net: nn.Module, data: _Batches, cfg: TrainConfig) -> tuple[float, float]:
    """Return (mean loss, directional accuracy) on a split without updating the network."""
    net.eval()
    total, hits, count = 0.0, 0.0, 0
    with torch.inference_mode():
        for x, y_dir, y_ret in data.iterate(4 * cfg.batch_size, None):
            loss, logit = _loss(net, x, y_dir, y_ret, cfg.return_weight)
            total += loss.item() * len(x)
            hits += ((logit > 0).float() == y_dir).sum().item()
            count += len(x)
    return total / count, hits / count


class _BestWeights:
    """Early-stopping bookkeeping: the best validation loss, its epoch and a weights copy."""

    __slots__ = ("epoch", "loss", "state")

    def __init__(self, net: nn.Module) -> None:
        self.loss, self.epoch = float("inf"), -1
        self.state = copy.deepcopy(net.state_dict())

    def offer(self, net: nn.Module, loss: float, epoch: int) -> bool:
        """Keep the weights if ``loss`` is the best so far; return whether it was."""
        if loss >= self.loss:
            return False
        self.loss, self.epoch, self.state = loss, epoch, copy.deepcopy(net.state_dict())
        return True


def _prepare_run(config: TrainConfig) -> np.random.Generator:
    """Apply the thread setting, seed everything and return the shuffling generator."""
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    seed_everything(config.seed)
    return np.random.default_rng(config.seed)


def fit_network(
    net: nn.Module,
    windows: SequenceWindows,
    targets: Targets,
    fit_positions: np.ndarray,
    val_positions: np.ndarray,
    config: TrainConfig,
    *,
    fold: int = 0,
    on_epoch: EpochCallback | None = None,
    clock: Clock = time.perf_counter,
) -> FitResult:
    """Train ``net`` on fit positions with early stopping on validation loss; keep the best."""
    if len(fit_positions) == 0 or len(val_positions) == 0:
        raise TrainingError("fit and validation splits must be non-empty")
    rng = _prepare_run(config)
    scale = float(np.std(targets.ret[windows.ends[fit_positions]])) or 1.0
    fit = _Batches.of(windows, targets, fit_positions, scale, config.device)
    val = _Batches.of(windows, targets, val_positions, scale, config.device)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best = _BestWeights(net)
    history: list[EpochMetrics] = []
    bar = tqdm(range(config.epochs), disable=not config.progress, desc=f"fold {fold}", leave=False)
    for epoch in bar:
        started = clock()
        train_loss = _train_epoch(net, opt, fit, config, rng)
        val_loss, val_acc = _validate(net, val, config)
        improved = best.offer(net, val_loss, epoch)
        metrics = EpochMetrics(
            fold, epoch, train_loss, val_loss, val_acc, clock() - started, improved
        )
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
        if epoch - best.epoch >= config.patience:
            break
    net.load_state_dict(best.state)
    net.eval()
    return FitResult(net, history, best.epoch, best.loss, scale, len(history) < config.epochs)


def predict_windows(
    net: nn.Module, windows: SequenceWindows, positions: np.ndarray, batch_size: int = PREDICT_CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """Return (probability up, return head in scaled units) for samples at ``positions``."""
    net.eval()
    if isinstance(net, TemporalCNN) and net.receptive_field <= windows.window:
        logits, rets = _cnn_step_outputs(net, windows, windows.ends[positions])
    else:
        device = next(net.parameters()).device
        logits, rets = [], []
        with torch.inference_mode():
            for start in range(0, len(positions), batch_size):
                logit, ret = net(windows.batch(positions[start : start + batch_size]).to(device))
                logits.append(logit)
                rets.append(ret)
    if not logits:
        return np.empty(0), np.empty(0)
    prob = torch.sigmoid(torch.cat(logits)).cpu().numpy().astype(float)
    return prob, torch.cat(rets).cpu().numpy().astype(float)


def _cnn_step_outputs(
    net: TemporalCNN, windows: SequenceWindows, ends: np.ndarray
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Return the (logit, ret) chunks ``net`` gives the windows ending at ``ends``.

    The output at a window's last step sees only its last ``receptive_field`` rows, so when they
    fit in the window one convolution over a stretch of the series yields the output of every
    window ending in it: each chunk of ends costs its span plus ``receptive_field - 1`` rows of
    history instead of ``window`` rows per sample. Equal to the windowed forward (tested).
    """
    device = next(net.parameters()).device
    history = net.receptive_field - 1
    logits, rets = [], []
    with torch.inference_mode():
        for start in range(0, len(ends), SERIES_CHUNK):
            chunk = ends[start : start + SERIES_CHUNK]
            first = int(chunk.min()) - history
            x = windows.rows(first, int(chunk.max()) + 1).unsqueeze(0).to(device)
            logit, ret = net.step_outputs(x)
            steps = torch.as_tensor(chunk - first, device=device)
            logits.append(logit[0, steps])
            rets.append(ret[0, steps])
    return logits, rets


def train_on_positions(
    data: WindowedData,
    kind: str,
    hparams: Mapping[str, Any],
    positions: np.ndarray,
    config: TrainConfig,
    *,
    fold: int = 0,
    on_epoch: EpochCallback | None = None,
) -> tuple[FitResult, StandardScaler, SequenceWindows]:
    """Fit scaler and network on training positions (validation = their last part)."""
    fit_pos, val_pos = holdout_split(positions, config.val_fraction, data.horizon)
    scaler = fit_scaler(data, positions)
    windows = scaled_windows(data, scaler)
    net = new_network(kind, len(data.feature_names), hparams, config)
    result = fit_network(
        net, windows, data.targets, fit_pos, val_pos, config, fold=fold, on_epoch=on_epoch
    )
    return result, scaler, windows


def walk_forward(
    data: WindowedData,
    kind: str,
    hparams: Mapping[str, Any],
    folds: Sequence[Fold],
    config: TrainConfig,
    *,
    on_epoch: EpochCallback | None = None,
    on_fold: Callable[[FoldResult], None] | None = None,
) -> list[FoldResult]:
    """Train one network per fold and return its out-of-sample predictions on the fold's test."""
    results = []
    for fold in folds:
        assert_no_overlap(data, fold)
        fit, scaler, windows = train_on_positions(
            data, kind, hparams, fold.train, config, fold=fold.index, on_epoch=on_epoch
        )
        prob, ret_scaled = predict_windows(fit.network, windows, fold.test)
        rows = data.ends[fold.test]
        result = FoldResult(
            fold, rows, data.index[rows], prob, ret_scaled * fit.return_scale, scaler, fit
        )
        results.append(result)
        if on_fold is not None:
            on_fold(result)
    return results


_TRAIN_KEYS = frozenset({"lr", "weight_decay", "batch_size", "return_weight"})


def candidate_params(
    space: Mapping[str, Sequence[Any]],
    method: Literal["random", "grid"],
    n_iter: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Return the candidates to try: the full grid, or ``n_iter`` seeded random draws."""
    keys = sorted(space)
    if method == "grid":
        return [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(space[k] for k in keys))
        ]
    if method != "random":
        raise TrainingError(f"unknown search method {method!r}")
    rng = np.random.default_rng(seed)
    return [{k: space[k][int(rng.integers(len(space[k])))] for k in keys} for _ in range(n_iter)]


def search_hyperparameters(
    data: WindowedData,
    kind: str,
    space: Mapping[str, Sequence[Any]],
    positions: np.ndarray,
    config: TrainConfig,
    *,
    method: Literal["random", "grid"] = "random",
    n_iter: int = 8,
    base_hparams: Mapping[str, Any] | None = None,
) -> SearchResult:
    """Pick the candidate with the lowest validation loss, using training positions only."""
    trials = []
    for params in candidate_params(space, method, n_iter, config.seed):
        net_params, train_params = split_search_params(params)
        hparams = resolve_hparams(kind, {**(base_hparams or {}), **net_params})
        cfg = replace(config, **train_params)
        fit, _, _ = train_on_positions(data, kind, hparams, positions, cfg)
        trials.append(Trial(params, fit.best_val_loss, fit.best_epoch))
    if not trials:
        raise TrainingError("empty search space")
    best = min(trials, key=lambda t: t.val_loss)
    return SearchResult(best.params, tuple(trials))


def split_search_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split searched params into (network hyperparameters, TrainConfig overrides)."""
    net = {k: v for k, v in params.items() if k not in _TRAIN_KEYS}
    train = {k: v for k, v in params.items() if k in _TRAIN_KEYS}
    return net, train
