"""Writes for the model registry: training runs, trained versions, activation (audited).

Training is one model per run. ``training_run_start`` validates a request and records a pending
``TrainingRun``; ``train_model`` claims it, loads the first symbol's bars (generating and storing
simulated bars when the database has none for the range, so training data always lives in the
database), runs the engine pipeline with per-epoch metrics written to the run as they happen,
saves the artifact under ``MODELS_DIR/<name>/v<version>/`` and registers an inactive ``MLModel``.

Engine modules (torch) are imported inside the functions that need them: this module is imported
by the admin at start-up, and every ``manage.py`` call should not pay for loading torch.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from marketdata.data_source import DATA_SOURCES
from marketdata.engine.events import TIMEFRAME_SECONDS
from marketdata.services import MarketDataUnavailable, bars_load, bars_missing_message
from models_ml.choices import ModelType, RunStatus
from models_ml.engine.errors import MLEngineError
from models_ml.models import MLModel, TrainingRun
from monitoring.services import audit_record, broadcast
from rrr_site import run_owner
from rrr_site.locks import OwnerLock
from rrr_site.run_owner import OWNER_DIED  # noqa: F401 - re-exported (admin, tests)

if TYPE_CHECKING:
    import pandas as pd

    from models_ml.engine.pipeline import TrainingOutcome, TrainingSpec
    from models_ml.engine.training import EpochMetrics

logger = logging.getLogger(__name__)

TRAINABLE_TYPES = (ModelType.TRANSFORMER.value, ModelType.LSTM.value, ModelType.CNN.value)
FOLD_MODES = ("expanding", "rolling")
# Fewest samples per walk-forward block (each test fold and the first training block): below
# this a fold's accuracy is noise and the validation split of the first fold may be empty.
MIN_FOLD_SAMPLES = 50
SIMULATION_SEED = 42  # the seed ``backfill --source sim`` uses: the same bars either way
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
REGISTER_ATTEMPTS = 3
# Random-search candidates per network. Keys the user fixes with ``hparams`` are not searched.
SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "transformer": {
        "d_model": [16, 32, 64],
        "n_layers": [1, 2, 3],
        "dropout": [0.0, 0.1, 0.2],
        "lr": [3e-4, 1e-3, 3e-3],
    },
    "lstm": {
        "hidden": [32, 48, 64],
        "n_layers": [1, 2],
        "dropout": [0.0, 0.1, 0.2],
        "lr": [3e-4, 1e-3, 3e-3],
    },
    "cnn": {
        "channels": [16, 32, 48],
        "kernel_size": [2, 3, 5],
        "n_layers": [3, 4, 5],
        "dropout": [0.0, 0.1, 0.2],
        "lr": [3e-4, 1e-3, 3e-3],
    },
}


class TrainingRequestError(ValueError):
    """A training request is invalid (unknown model, empty range, too few bars, bad params)."""


class TrainingDataError(RuntimeError):
    """The bars for a run cannot be found or generated, or are too few."""


class TrainingRunStateError(RuntimeError):
    """A run is not in a state that allows the requested transition (e.g. already claimed)."""


class TrainingStopped(BaseException):
    """The process was told to stop (SIGTERM) while training.

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way swallows it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- activation ---------------------------------------------------------------------------------


class ModelWithoutEdge(ValueError):
    """Activation refused: the version's out-of-sample verdict is "no edge"."""


def model_has_no_edge(model: MLModel) -> bool:
    """Return True when the version's evaluation found no edge over the baselines."""
    metrics = model.metrics or {}
    return metrics.get("has_edge") is False or metrics.get("verdict") == "no edge"


@transaction.atomic
def model_activate(*, model: MLModel, actor: Any, force: bool = False) -> MLModel:
    """Make ``model`` the one active version of its name; deactivate its siblings (audited).

    A version whose verdict is "no edge" is refused (``ModelWithoutEdge``) unless ``force``;
    a forced activation is audited as such.
    """
    no_edge = model_has_no_edge(model)
    if no_edge and not force and not model.active:
        raise ModelWithoutEdge(
            f"{model} has no edge out of sample (verdict: no edge): not activated; force the "
            "activation (train --force-activate, or the admin's forced action) to trade it anyway"
        )
    siblings = list(
        MLModel.objects.select_for_update()
        .filter(name=model.name, active=True)
        .exclude(pk=model.pk)
    )
    for sibling in siblings:
        sibling.active = False
        sibling.save(update_fields=["active"])
        audit_record(
            actor=actor,
            action="ml_model.deactivate",
            obj=sibling,
            before={"active": True},
            after={"active": False},
        )
    if not model.active:
        model.active = True
        model.save(update_fields=["active"])
        audit_record(
            actor=actor,
            action="ml_model.activate",
            obj=model,
            before={"active": False},
            after={"active": True, **({"forced": True, "verdict": "no edge"} if no_edge else {})},
        )
        broadcast("system", "model", {"name": model.name, "version": model.version, "active": True})
    return model


@transaction.atomic
def model_deactivate(*, model: MLModel, actor: Any) -> MLModel:
    """Switch ``model`` off (audited)."""
    if model.active:
        model.active = False
        model.save(update_fields=["active"])
        audit_record(
            actor=actor,
            action="ml_model.deactivate",
            obj=model,
            before={"active": True},
            after={"active": False},
        )
        broadcast(
            "system", "model", {"name": model.name, "version": model.version, "active": False}
        )
    return model


# -- training requests --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainingParams:
    """How a run trains: sizes, validation, search, fees and seeds (TrainingRun.params)."""

    epochs: int = 20
    trials: int = 0  # random hyperparameter-search candidates; 0 = use hparams as given
    folds: int = 3
    fold_mode: str = "expanding"
    train_size: int | None = None  # samples per training block, rolling mode only
    window: int = 64
    horizon: int = 1
    hparams: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 256
    patience: int = 4
    lr: float = 1e-3
    device: str = "cpu"
    seed: int = 0
    fee_bps: float = 10.0
    threads: int = 1  # torch intra-op threads; more is slower for these sizes on small hosts
    simulation_seed: int = SIMULATION_SEED
    source: str = "database"  # "sim": the simulated market's bars (stored marked simulated)
    features: list[str] | None = None  # train on these feature columns only (None: all)
    features_from: int | None = None  # the OptimizationRun that chose them
    # Data groups joined point-in-time to the bars (price, sentiment, onchain, book, flow);
    # None: price only (the bars' own columns). Each group's contribution is reported.
    feature_groups: list[str] | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> TrainingParams:
        """Build and validate params from a mapping (unknown keys rejected)."""
        data = dict(data or {})
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise TrainingRequestError(f"unknown training parameter(s): {', '.join(unknown)}")
        try:
            params = cls(**data)
        except TypeError as exc:
            raise TrainingRequestError(str(exc)) from exc
        params.check()
        return params

    def check(self) -> None:
        """Raise TrainingRequestError for out-of-range values."""
        problems = [
            f"{name} must be >= {low}"
            for name, low in (
                ("epochs", 1),
                ("trials", 0),
                ("folds", 1),
                ("horizon", 1),
                ("batch_size", 1),
                ("patience", 1),
                ("threads", 1),
            )
            if not isinstance(getattr(self, name), int) or getattr(self, name) < low
        ]
        if not isinstance(self.window, int) or not 2 <= self.window <= 1000:
            problems.append("window must be in [2, 1000]")
        if self.source not in DATA_SOURCES:
            problems.append(f"source must be one of {', '.join(DATA_SOURCES)}")
        if self.fold_mode not in FOLD_MODES:
            problems.append(f"fold_mode must be one of {', '.join(FOLD_MODES)}")
        if self.fold_mode == "rolling" and not self.train_size:
            problems.append("rolling folds need train_size")
        if not self.lr > 0 or not self.fee_bps >= 0:
            problems.append("lr must be > 0 and fee_bps >= 0")
        if not isinstance(self.hparams, dict):
            problems.append("hparams must be a mapping")
        if self.features is not None and not (
            isinstance(self.features, list)
            and self.features
            and all(isinstance(f, str) for f in self.features)
        ):
            problems.append("features must be a non-empty list of feature names")
        if self.feature_groups is not None:
            problems += _feature_groups_problems(self.feature_groups)
        if problems:
            raise TrainingRequestError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def _feature_groups_problems(groups: Any) -> list[str]:
    """Return what is wrong with a ``feature_groups`` value (nothing: [])."""
    from marketdata.feature_inputs import parse_feature_groups

    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        return ["feature_groups must be a list of group names"]
    try:
        parsed = parse_feature_groups(",".join(groups))
    except ValueError as exc:
        return [str(exc)]
    return [] if parsed == groups else [f"feature_groups must be listed as {parsed}"]


def minimum_bars(params: TrainingParams) -> int:
    """Return the fewest bars a run needs: feature warm-up, one window, targets and folds."""
    from models_ml.engine.features import FeatureSet

    samples = (params.folds + 1) * MIN_FOLD_SAMPLES
    return FeatureSet().warmup + params.window - 1 + params.horizon + samples


def _check_range(timeframe: str, start: datetime, end: datetime, params: TrainingParams) -> None:
    """Raise TrainingRequestError unless [start, end) can hold enough bars of ``timeframe``."""
    if timeframe not in TIMEFRAME_SECONDS:
        raise TrainingRequestError(
            f"unknown timeframe {timeframe!r}; choose from {', '.join(TIMEFRAME_SECONDS)}"
        )
    if start.tzinfo is None or end.tzinfo is None:
        raise TrainingRequestError("start and end must be timezone-aware (UTC)")
    if end <= start:
        raise TrainingRequestError(f"end {end:%Y-%m-%d %H:%M} must be after start")
    capacity = int((end - start).total_seconds() // TIMEFRAME_SECONDS[timeframe])
    needed = minimum_bars(params)
    if capacity < needed:
        raise TrainingRequestError(
            f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} holds at most {capacity} "
            f"{timeframe} bars; window {params.window}, horizon {params.horizon} and "
            f"{params.folds} folds need at least {needed}"
        )


def _check_hparams(model_type: str, params: TrainingParams) -> None:
    """Raise TrainingRequestError for hyperparameters the network does not accept."""
    from models_ml.engine.errors import NetworkConfigError
    from models_ml.engine.networks import build_network

    try:  # building a 1-feature network checks names and values (e.g. d_model % n_heads)
        build_network(model_type, 1, device=params.device, **params.hparams)
    except NetworkConfigError as exc:
        raise TrainingRequestError(str(exc)) from exc


def training_run_start(
    *,
    model_type: str,
    symbols: Sequence[str],
    timeframe: str,
    start: datetime,
    end: datetime,
    params: Mapping[str, Any] | None = None,
) -> TrainingRun:
    """Validate a training request and record it as a pending ``TrainingRun``."""
    if model_type not in TRAINABLE_TYPES:
        raise TrainingRequestError(
            f"unknown model type {model_type!r}; choose from {', '.join(TRAINABLE_TYPES)}"
        )
    names = [s.strip().upper() for s in symbols if s and s.strip()]
    if not names:
        raise TrainingRequestError("at least one symbol is needed, e.g. BTC-USD")
    checked = TrainingParams.from_mapping(params)
    _check_range(timeframe, start, end, checked)
    _check_hparams(model_type, checked)
    return TrainingRun.objects.create(
        model_type=model_type,
        params=checked.to_dict(),
        symbols=list(dict.fromkeys(names)),
        timeframe=timeframe,
        start=start,
        end=end,
        status=RunStatus.PENDING,
    )


# -- training data ------------------------------------------------------------------------------


def training_bars(
    *,
    symbol: str,
    timeframe: str,
    start: datetime,
    end: datetime,
    source: str = "database",
    seed: int = SIMULATION_SEED,
) -> tuple[pd.DataFrame, str]:
    """Return the bars in [start, end) and their origin ("database" or "simulated").

    Stored venue bars, or with ``source="sim"`` the simulated market's (stored marked simulated
    first when missing), so what the model trains on is always what the database holds.
    """
    try:
        return bars_load(
            symbol=symbol, timeframe=timeframe, start=start, end=end, source=source, seed=seed
        )
    except MarketDataUnavailable as exc:
        raise TrainingDataError(str(exc)) from exc


# -- training -----------------------------------------------------------------------------------


def default_model_name(symbol: str, model_type: str) -> str:
    """Return the registry name used when none is given: ``<symbol>-<model>``."""
    return f"{symbol}-{model_type}"


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a safe registry name (it becomes a directory), else raise."""
    if not NAME_PATTERN.match(name) or ".." in name:
        raise TrainingRequestError(
            f"model name {name!r} must be 1-64 letters, digits, '.', '_' or '-'"
        )
    return name


def training_spec(model_type: str, timeframe: str, params: TrainingParams) -> TrainingSpec:
    """Return the engine's training spec for a run's parameters."""
    from models_ml.engine.evaluation import EvaluationConfig
    from models_ml.engine.pipeline import TrainingSpec
    from models_ml.engine.training import TrainConfig

    space = None
    if params.trials:
        fixed = set(params.hparams)
        space = {k: v for k, v in SEARCH_SPACES[model_type].items() if k not in fixed}
    train = TrainConfig(
        epochs=params.epochs,
        batch_size=params.batch_size,
        lr=params.lr,
        patience=params.patience,
        seed=params.seed,
        device=params.device,
        num_threads=params.threads,
    )
    periods_per_year = 365.0 * 86_400.0 / TIMEFRAME_SECONDS[timeframe]
    return TrainingSpec(
        kind=model_type,
        hparams=params.hparams,
        window=params.window,
        horizon=params.horizon,
        n_folds=params.folds,
        fold_mode=params.fold_mode,  # type: ignore[arg-type]
        train_size=params.train_size,
        columns=params.features,
        train=train,
        evaluation=EvaluationConfig(fee_bps=params.fee_bps, periods_per_year=periods_per_year),
        search_space=space or None,
        search_method="random",
        search_iter=params.trials,
    )


class _RunRecorder:
    """Writes per-epoch metrics and progress to the run as training goes."""

    def __init__(
        self,
        run: TrainingRun,
        params: TrainingParams,
        on_epoch: Callable[[EpochMetrics], None] | None,
        lock: OwnerLock,
    ) -> None:
        self.run = run
        self.folds = params.folds
        self.epochs = params.epochs
        self.on_epoch = on_epoch
        self.lock = lock

    def epoch(self, metrics: EpochMetrics) -> None:
        """Append one epoch (the final fit on every sample has fold index == folds)."""
        if not self.lock.alive():
            # A reaper may already have failed the run: stop rather than train for nobody.
            raise TrainingRunStateError(f"training run {self.run.pk} lost its ownership lock")
        row = json_ready(metrics.as_dict())
        row["phase"] = "final" if metrics.fold >= self.folds else "fold"
        self.run.epochs.append(row)
        done = (metrics.fold + (metrics.epoch + 1) / self.epochs) / (self.folds + 1)
        self._advance(done)
        self.run.save(update_fields=["epochs", "progress"])
        if self.on_epoch is not None:
            self.on_epoch(metrics)

    def progress(self, share: float) -> None:
        """Record the share of trainings done (called after each fold)."""
        self._advance(share)
        self.run.save(update_fields=["progress"])

    def _advance(self, share: float) -> None:
        # Early stopping ends a training before its last epoch: never let progress go back.
        self.run.progress = min(1.0, max(self.run.progress, share))


def training_run_lock(run_id: int) -> OwnerLock:
    """Return the ownership lock of training run ``run_id`` (not yet taken).

    Whoever trains a run holds it from before the claim until the outcome is written; the OS or
    the database frees it when that process dies, which is how a dead owner is told apart.
    """
    return run_owner.run_lock(run_owner.TRAIN, run_id)


def training_runs_reap() -> list[int]:
    """Fail every running run whose owner died (its lock is free); return their ids."""
    return run_owner.runs_reap(TrainingRun.objects.all(), run_owner.TRAIN)


def _claim(run: TrainingRun) -> None:
    """Move a pending run to running, or raise if another worker took it or it is done."""
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING, started_at=now, error=""
    )
    if not claimed:
        run.refresh_from_db(fields=["status"])
        raise TrainingRunStateError(f"training run {run.pk} is {run.status}, not pending")
    run.status, run.started_at = RunStatus.RUNNING, now


def _fail(run: TrainingRun, status: str, message: str) -> None:
    """Record a run's failure (or cancellation) and its reason."""
    now = timezone.now()
    # A reaper that already failed the run (its owner lost the lock) keeps its reason.
    mine = TrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING)
    mine.update(status=status, error=message, finished_at=now)
    run.refresh_from_db(fields=["status", "error", "finished_at"])


def train_model(
    *,
    run: TrainingRun,
    name: str | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
) -> MLModel:
    """Train a pending run and register the result as a new, inactive ``MLModel`` version.

    The run records per-epoch metrics and progress as they happen, then fold and final metrics.
    Any exception marks the run failed with its message (cancelled on Ctrl-C or SIGTERM, with
    the reason) and is re-raised. The run's lock is held throughout, so a process killed
    meanwhile leaves a run that ``training_runs_reap`` can tell is orphaned.
    """
    if name is not None:
        check_model_name(name)
    lock = training_run_lock(run.pk)
    if not lock.acquire():
        holder = lock.holder() or "holder unknown"
        raise TrainingRunStateError(f"training run {run.pk} is owned by another process ({holder})")
    try:
        return _train_owned(run, name, on_epoch, lock)
    finally:
        lock.release()


def _train_owned(
    run: TrainingRun,
    name: str | None,
    on_epoch: Callable[[EpochMetrics], None] | None,
    lock: OwnerLock,
) -> MLModel:
    """Claim and train a run whose lock this process holds; record any failure on the run."""
    _claim(run)
    try:
        return _train_claimed(run, name, on_epoch, lock)
    except KeyboardInterrupt:
        _fail(run, RunStatus.CANCELLED, "interrupted (SIGINT)")
        raise
    except TrainingStopped as exc:
        _fail(run, RunStatus.CANCELLED, exc.reason)
        raise
    except Exception as exc:
        _fail(run, RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
        if isinstance(exc, TrainingDataError | MLEngineError):
            logger.warning("training run %s failed: %s", run.pk, exc)
        else:
            logger.exception("training run %s failed", run.pk)
        raise


def _train_claimed(
    run: TrainingRun,
    name: str | None,
    on_epoch: Callable[[EpochMetrics], None] | None,
    lock: OwnerLock,
) -> MLModel:
    """Load data, train, evaluate and register (the run is already claimed)."""
    from models_ml.engine.pipeline import run_training

    params = TrainingParams.from_mapping(run.params)
    symbol = run.symbols[0]
    name = check_model_name(name or default_model_name(symbol, run.model_type))
    bars, source = training_bars(
        symbol=symbol,
        timeframe=run.timeframe,
        start=run.start,
        end=run.end,
        source=params.source,
        seed=params.simulation_seed,
    )
    data = _data_summary(run, symbol, bars, source, params)
    run.metrics = {"data": data}
    run.save(update_fields=["metrics"])
    needed = minimum_bars(params)
    if len(bars) < needed:
        raise TrainingDataError(
            f"{len(bars)} {symbol} {run.timeframe} bars in the range; at least {needed} needed"
        )
    recorder = _RunRecorder(run, params, on_epoch, lock)
    spec = training_spec(run.model_type, run.timeframe, params)
    if params.feature_groups:
        from models_ml.feature_groups import with_feature_groups

        bars, spec, group_report = with_feature_groups(bars, spec, symbol, run.timeframe, params)
    outcome = run_training(bars, spec, on_epoch=recorder.epoch, on_progress=recorder.progress)
    metrics = {**json_ready(outcome.report.as_dict()), "data": data}
    if params.features is not None:
        metrics["all_features"] = _all_features_report(bars, spec, params)
    if params.feature_groups:
        metrics["feature_groups"] = json_ready(group_report)
    if outcome.search is not None:
        metrics["search"] = json_ready(
            [
                {"params": t.params, "val_loss": t.val_loss, "best_epoch": t.best_epoch}
                for t in outcome.search.trials
            ]
        )
    return model_register(
        outcome=outcome,
        name=name,
        symbols=[symbol],
        timeframe=run.timeframe,
        metrics=metrics,
        run=run,
    )


def _all_features_report(
    bars: pd.DataFrame, spec: TrainingSpec, params: TrainingParams
) -> dict[str, Any]:
    """Train the same spec on every feature, on the same folds, for the chosen-features verdict."""
    from dataclasses import replace

    from models_ml.engine.pipeline import run_training

    outcome = run_training(bars, replace(spec, columns=None))
    return {
        "features": len(outcome.feature_set.names),
        "chosen": list(params.features or ()),
        "features_from": params.features_from,
        **json_ready(outcome.report.as_dict()),
    }


def _data_summary(
    run: TrainingRun, symbol: str, bars: pd.DataFrame, source: str, params: TrainingParams
) -> dict[str, Any]:
    """Describe the training data honestly: symbol used, origin, size and span."""
    data: dict[str, Any] = {
        "symbol": symbol,
        "source": source,
        "bars": len(bars),
        "first": bars.index[0].isoformat() if len(bars) else None,
        "last": bars.index[-1].isoformat() if len(bars) else None,
    }
    if source == "simulated":
        data["simulation_seed"] = params.simulation_seed
    ignored = [s for s in run.symbols if s != symbol]
    if ignored:
        data["ignored_symbols"] = ignored
        data["note"] = f"one model per run: trained on {symbol} only"
    return data


def _fold_metrics(outcome: TrainingOutcome) -> list[dict[str, Any]]:
    """Return each fold's out-of-sample metrics with how its training went."""
    fits = {f.fold.index: f for f in outcome.folds}
    rows = []
    for row in outcome.report.per_fold:
        fit = fits[row["fold"]].fit
        rows.append(
            {
                **row,
                "n_test": len(fits[row["fold"]].rows),
                "epochs_run": len(fit.history),
                "best_epoch": fit.best_epoch,
                "best_val_loss": fit.best_val_loss,
                "stopped_early": fit.stopped_early,
            }
        )
    return json_ready(rows)


def _hyperparameters(outcome: TrainingOutcome) -> dict[str, Any]:
    """Return what defines the trained network and how it was trained."""
    spec = outcome.spec
    return json_ready(
        {
            "network": outcome.hparams,
            "train": outcome.train_config.to_dict(),
            "window": spec.window,
            "horizon": spec.horizon,
            "folds": spec.n_folds,
            "fold_mode": spec.fold_mode,
            "features": outcome.feature_set.to_dict(),
        }
    )


def _next_version(name: str, root: Path) -> int:
    """Return one more than the highest version of ``name`` in the registry or on disk."""
    in_db = MLModel.objects.filter(name=name).aggregate(v=Max("version"))["v"] or 0
    on_disk = [
        int(p.name[1:]) for p in (root / name).glob("v*") if p.is_dir() and p.name[1:].isdigit()
    ]
    return max([in_db, *on_disk]) + 1


def model_register(
    *,
    outcome: TrainingOutcome,
    name: str,
    symbols: Sequence[str],
    timeframe: str,
    metrics: Mapping[str, Any] | None = None,
    run: TrainingRun | None = None,
) -> MLModel:
    """Save a trained outcome as the next version of ``name`` and record it (inactive).

    The artifact goes to ``MODELS_DIR/<name>/v<version>/``. When ``run`` is given it is
    completed and linked in the same transaction as the new row.
    """
    from models_ml.engine.errors import ArtifactError

    check_model_name(name)
    root = Path(settings.MODELS_DIR)
    for _ in range(REGISTER_ATTEMPTS):
        version = _next_version(name, root)
        directory = root / name / f"v{version}"
        meta = {"name": name, "version": version, "symbols": list(symbols), "timeframe": timeframe}
        if run is not None:
            meta["training_run"] = run.pk
        try:
            checksum = outcome.save(directory, metadata=meta)
        except ArtifactError:
            if directory.exists():
                continue  # another run took this version between our look and our write
            raise
        try:
            return _record_version(
                outcome, name, version, directory, checksum, symbols, timeframe, metrics, run
            )
        except IntegrityError:
            shutil.rmtree(directory, ignore_errors=True)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
    raise TrainingRunStateError(f"could not allocate a version of {name!r}")


@transaction.atomic
def _record_version(
    outcome: TrainingOutcome,
    name: str,
    version: int,
    directory: Path,
    checksum: str,
    symbols: Sequence[str],
    timeframe: str,
    metrics: Mapping[str, Any] | None,
    run: TrainingRun | None,
) -> MLModel:
    """Create the MLModel row and, if given, complete and link the run (one transaction)."""
    now = timezone.now()
    model = MLModel.objects.create(
        name=name,
        model_type=outcome.spec.kind,
        version=version,
        artifact_path=_stored_path(directory),
        checksum=checksum,
        metrics=json_ready(dict(metrics or outcome.report.as_dict())),
        hyperparameters=_hyperparameters(outcome),
        feature_names=list(outcome.feature_set.names),
        symbols=list(symbols),
        timeframe=timeframe,
        trained_at=now,
        active=False,
    )
    if run is not None:
        done = {
            "model": model,
            "status": RunStatus.COMPLETED,
            "progress": 1.0,
            "fold_metrics": _fold_metrics(outcome),
            "metrics": model.metrics,
            "finished_at": now,
        }
        # Only a run still running is completed: one a reaper failed stays failed (rolled back).
        if not TrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(**done):
            raise TrainingRunStateError(f"training run {run.pk} is no longer running")
        for key, value in done.items():
            setattr(run, key, value)
    logger.info("registered %s (checksum %s)", model, checksum[:12])
    return model


def _stored_path(directory: Path) -> str:
    """Return the artifact path relative to MODELS_DIR when inside it (portable across hosts)."""
    root = Path(settings.MODELS_DIR).resolve()
    resolved = directory.resolve()
    try:
        return str(resolved.relative_to(root))
    except ValueError:
        return str(resolved)


def json_ready(value: Any) -> Any:
    """Return ``value`` with NaN/inf as None and numpy scalars as Python (valid JSON/jsonb)."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True, slots=True)
class PredictionBatch:
    """A model's predictions for one symbol: one row per bar (``frame``) and their features."""

    model: MLModel
    symbol: str
    horizon: int
    frame: pd.DataFrame  # index ts; probability, confidence, expected_return
    features: pd.DataFrame

    def table(self) -> pd.DataFrame:
        """Return the predictions as a flat table (what ``predict --out`` writes)."""
        out = self.frame[["probability", "confidence", "expected_return"]].copy()
        out.insert(0, "symbol", self.symbol)
        out.insert(1, "model", self.model.name)
        out.insert(2, "version", self.model.version)
        out.insert(3, "horizon", self.horizon)
        out = out.rename(columns={"probability": "up_probability"})
        out.index.name = "ts"
        return out.reset_index()


def predictions_compute(
    *, model: MLModel, symbol: str, start: datetime, end: datetime, source: str = "database"
) -> PredictionBatch:
    """Predict every bar of ``symbol`` in [start, end) in one batch (nothing is stored).

    History before ``start`` warms the features up (no look-ahead: each prediction uses bars up to
    its own). Bars come from ``source`` (venue bars, or "sim": the simulated market's).
    """
    from datetime import timedelta

    from marketdata.selectors import bars_frame
    from models_ml.engine.inference import Predictor
    from models_ml.selectors import model_artifact_dir

    predictor = Predictor.load(model_artifact_dir(model), model_name=str(model))
    warmup = timedelta(seconds=TIMEFRAME_SECONDS[model.timeframe] * predictor.warmup_bars * 2)
    if source == "sim":  # generate (and store, marked simulated) the range when missing
        training_bars(
            symbol=symbol, timeframe=model.timeframe, start=start - warmup, end=end, source="sim"
        )
    bars = bars_frame(
        symbol=symbol,
        timeframe=model.timeframe,
        start=start - warmup,
        end=end,
        simulated=source == "sim",
    )
    if bars.empty or bars.index[-1] < start:
        raise TrainingDataError(
            bars_missing_message(symbol=symbol, timeframe=model.timeframe, start=start, end=end)
        )
    batch = predictor.predict_batch(bars, symbol)
    batch = batch[batch.index >= start]
    features = predictor.spec.feature_set.compute(bars).loc[batch.index]
    return PredictionBatch(model, symbol, predictor.spec.horizon, batch, features)


def predictions_store(*, batch: PredictionBatch) -> int:
    """Store a batch as ``Prediction`` rows (direction and return per bar); return bars stored.

    Idempotent: existing (model, symbol, ts, kind, horizon) rows are kept.
    """
    from marketdata.models import Symbol
    from models_ml.models import Prediction

    symbol_id = Symbol.objects.values_list("pk", flat=True).get(name=batch.symbol)
    rows = []
    for (ts, row), (_, feats) in zip(
        batch.frame.iterrows(), batch.features.iterrows(), strict=True
    ):
        common = {
            "model": batch.model,
            "symbol_id": symbol_id,
            "ts": ts.to_pydatetime(),
            "horizon": batch.horizon,
            "confidence": float(row.confidence),
        }
        rows.append(
            Prediction(
                kind="direction",
                value=float(row.probability),
                features=json_ready(feats.to_dict()),
                **common,
            )
        )
        rows.append(Prediction(kind="return", value=float(row.expected_return), **common))
    Prediction.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2_000)
    return len(batch.frame)
