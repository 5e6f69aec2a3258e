"""``manage.py train``: walk-forward train a network, evaluate it against baselines, register it."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketdata.data_source import add_data_source_argument
from marketdata.engine.events import TIMEFRAME_SECONDS
from marketdata.management.commands.backfill import parse_moment
from models_ml.engine.errors import MLEngineError
from models_ml.models import MLModel, TrainingRun
from models_ml.services import (
    OWNER_DIED,
    TRAINABLE_TYPES,
    ModelWithoutEdge,
    TrainingDataError,
    TrainingParams,
    TrainingRequestError,
    TrainingRunStateError,
    TrainingStopped,
    check_model_name,
    model_activate,
    model_has_no_edge,
    train_model,
    training_run_start,
    training_runs_reap,
)
from models_ml.tasks import TRAIN_TASK

ACTOR = "train-command"
METRIC_COLUMNS = (
    ("accuracy", "accuracy", "{:.4f}"),
    ("auc", "auc", "{:.4f}"),
    ("log_loss", "log loss", "{:.4f}"),
    ("mse", "mse", "{:.3e}"),
    ("sharpe", "sharpe", "{:.2f}"),
    ("mean_return_bps", "ret bps/bar", "{:.3f}"),
)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into ``TrainingStopped`` meanwhile, so the run is recorded as stopped.

    Without it the default action kills the process and the run row says ``running`` forever.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def stop(signum: int, frame: Any) -> None:
        raise TrainingStopped(f"stopped by {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def logs_to_stderr(enabled: bool) -> Iterator[None]:
    """Send log lines that go to stdout to stderr meanwhile, so ``--json`` output stays JSON."""
    handlers = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and h.stream is sys.stdout
    ]
    if enabled:
        for handler in handlers:
            handler.setStream(sys.stderr)
    try:
        yield
    finally:
        if enabled:
            for handler in handlers:
                handler.setStream(sys.stdout)


def _plain(text: str) -> str:
    """Return text unstyled (stderr is styled as an error by default)."""
    return text


class EpochProgress:
    """A tqdm bar over every epoch of every fold plus the final fit (early stops skip ahead)."""

    def __init__(self, folds: int, epochs: int, *, enabled: bool) -> None:
        from tqdm import tqdm

        self.folds, self.epochs = folds, epochs
        self.bar = tqdm(
            total=(folds + 1) * epochs,
            unit="epoch",
            desc=f"fold 1/{folds}",
            file=sys.stderr,
            disable=not enabled,
            dynamic_ncols=True,
        )

    def __call__(self, metrics: Any) -> None:
        """Advance to the reported epoch and show its validation scores."""
        done = metrics.fold * self.epochs + metrics.epoch + 1
        final = metrics.fold >= self.folds
        self.bar.set_description("final fit" if final else f"fold {metrics.fold + 1}/{self.folds}")
        self.bar.set_postfix(
            val_loss=f"{metrics.val_loss:.4f}", val_acc=f"{metrics.val_accuracy:.3f}"
        )
        self.bar.update(max(0, done - self.bar.n))

    def close(self, *, complete: bool) -> None:
        """Close the bar, filled when training completed (the last fit may stop early)."""
        if complete:
            self.bar.update(self.bar.total - self.bar.n)
        self.bar.close()


class Command(BaseCommand):
    help = (
        "Train a Transformer, LSTM or temporal CNN on one symbol's bars with walk-forward "
        "validation, print its out-of-sample metrics next to the baselines and register it as "
        "a new (inactive) model version. Bars come from the database (none is an error saying "
        "how to backfill them) or, with --source sim, from the simulated market."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = TrainingParams()
        parser.add_argument(
            "--model", required=True, choices=TRAINABLE_TYPES, help="Network to train"
        )
        parser.add_argument(
            "--symbols", required=True, help="e.g. BTC-USD (one model per run: the first is used)"
        )
        parser.add_argument(
            "--timeframe", default="1m", choices=list(TIMEFRAME_SECONDS), help="Bar timeframe"
        )
        add_data_source_argument(parser)
        parser.add_argument("--start", required=True, help="UTC date or ISO datetime, inclusive")
        parser.add_argument("--end", required=True, help="UTC date or ISO datetime, exclusive")
        parser.add_argument(
            "--epochs", type=int, default=defaults.epochs, help="Most epochs per fold"
        )
        parser.add_argument(
            "--trials",
            type=int,
            default=defaults.trials,
            help="Random hyperparameter-search trials on the first fold's training data (0: none)",
        )
        parser.add_argument(
            "--folds", type=int, default=defaults.folds, help="Walk-forward folds (out of sample)"
        )
        parser.add_argument(
            "--fold-mode",
            choices=["expanding", "rolling"],
            default=defaults.fold_mode,
            help="Walk-forward training window: growing from the start, or a fixed length",
        )
        parser.add_argument(
            "--train-size", type=int, help="Training samples per fold (rolling folds)"
        )
        parser.add_argument("--window", type=int, default=defaults.window, help="Bars per input")
        parser.add_argument(
            "--horizon", type=int, default=defaults.horizon, help="Bars ahead to predict"
        )
        parser.add_argument(
            "--hparams", default="{}", help="Network sizes as JSON, e.g. '{\"hidden\": 64}'"
        )
        parser.add_argument(
            "--batch-size", type=int, default=defaults.batch_size, help="Samples per batch"
        )
        parser.add_argument(
            "--patience",
            type=int,
            default=defaults.patience,
            help="Epochs without a better validation loss before a fold stops early",
        )
        parser.add_argument("--lr", type=float, default=defaults.lr, help="AdamW learning rate")
        parser.add_argument(
            "--fee-bps",
            type=float,
            default=defaults.fee_bps,
            help="Fee per unit of position change in the out-of-sample trading evaluation",
        )
        parser.add_argument("--seed", type=int, default=defaults.seed, help="Seed of every draw")
        parser.add_argument(
            "--device", choices=["cpu", "cuda"], default=defaults.device, help="torch device"
        )
        parser.add_argument(
            "--threads", type=int, default=defaults.threads, help="torch threads (default 1)"
        )
        parser.add_argument("--name", help="Registry name (default <symbol>-<model>)")
        parser.add_argument(
            "--features-from",
            type=int,
            metavar="RUN",
            help="Train on the features optimisation run RUN chose (compared with all features)",
        )
        parser.add_argument("--json", action="store_true", help="Print the outcome as JSON")
        parser.add_argument(
            "--async",
            dest="enqueue",
            action="store_true",
            help="Queue the run for a django-q2 worker and print the task id",
        )
        parser.add_argument(
            "--activate",
            action="store_true",
            help="Activate the new version (audited); refused when its verdict is no edge",
        )
        parser.add_argument(
            "--force-activate",
            action="store_true",
            help="With --activate: activate even a version without an edge (audited as forced)",
        )
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar")
        parser.add_argument(
            "--feature-groups",
            help="Data joined point-in-time to the bars, e.g. price,sentiment,onchain,book,flow; "
            "reports each group's out-of-sample contribution beside price only",
        )

    def handle(self, *args, **options) -> None:
        with logs_to_stderr(options["json"]), stop_on_sigterm():
            try:
                self._handle(options)
            except TrainingStopped as exc:
                raise CommandError(f"training stopped: {exc.reason}") from None
            except KeyboardInterrupt:
                raise CommandError("training interrupted (SIGINT)") from None

    def _handle(self, options: dict[str, Any]) -> None:
        """Start the run, then train here or enqueue it, and report."""
        run = self._start(options)
        for run_id in training_runs_reap():
            self.stderr.write(
                f"note: training run {run_id} had lost its process: marked failed ({OWNER_DIED})",
                style_func=self.style.WARNING,
            )
        symbols = run.symbols
        if len(symbols) > 1 and not options["json"]:
            self.stderr.write(
                f"note: one model per run: training on {symbols[0]} only "
                f"({', '.join(symbols[1:])} ignored; recorded on the run)",
                style_func=self.style.WARNING,
            )
        if options["enqueue"]:
            self._enqueue(run, options)
            return
        model = self._train(run, options)
        refused = self._activate(model, options) if options["activate"] else None
        run.refresh_from_db()
        model.refresh_from_db()
        if options["json"]:
            self.stdout.write(json.dumps(outcome_dict(run, model), indent=2, allow_nan=False))
        else:
            self._report(run, model)
        if refused:
            raise CommandError(refused)

    def _activate(self, model: MLModel, options: dict[str, Any]) -> str | None:
        """Activate the new version; return why it was refused (no edge, not forced)."""
        force = options["force_activate"]
        try:
            model_activate(model=model, actor=ACTOR, force=force)
        except ModelWithoutEdge as exc:
            return str(exc)
        if force and model_has_no_edge(model):
            self.stderr.write(
                f"WARNING: {model} ACTIVATED WITHOUT AN EDGE (--force-activate): it does not "
                "beat the baselines out of sample; runtrader and model_signal will trade it.",
                style_func=self.style.ERROR,
            )
        return None

    def _start(self, options: dict[str, Any]) -> TrainingRun:
        """Validate the request and record the pending run."""
        start = parse_moment(options["start"], "--start")
        end = parse_moment(options["end"], "--end")
        try:
            hparams = json.loads(options["hparams"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--hparams is not JSON: {exc}") from None
        params = {
            "epochs": options["epochs"],
            "trials": options["trials"],
            "folds": options["folds"],
            "fold_mode": options["fold_mode"],
            "train_size": options["train_size"],
            "window": options["window"],
            "horizon": options["horizon"],
            "hparams": hparams,
            "batch_size": options["batch_size"],
            "patience": options["patience"],
            "lr": options["lr"],
            "fee_bps": options["fee_bps"],
            "seed": options["seed"],
            "device": options["device"],
            "threads": options["threads"],
            "source": options["source"],
        }
        if options["feature_groups"]:
            from marketdata.feature_inputs import parse_feature_groups

            try:
                params["feature_groups"] = parse_feature_groups(options["feature_groups"])
            except ValueError as exc:
                raise CommandError(f"--feature-groups: {exc}") from None
        try:
            if options["features_from"] is not None:
                params.update(features_from(options["features_from"]))
            if options["name"]:
                check_model_name(options["name"])
            return training_run_start(
                model_type=options["model"],
                symbols=options["symbols"].split(","),
                timeframe=options["timeframe"],
                start=start,
                end=end,
                params=params,
            )
        except TrainingRequestError as exc:
            raise CommandError(str(exc)) from None

    def _train(self, run: TrainingRun, options: dict[str, Any]) -> MLModel:
        """Train in this process with a progress bar; turn training failures into CommandError."""
        params = TrainingParams.from_mapping(run.params)
        enabled = not options["no_progress"] and sys.stderr.isatty()
        if params.trials and enabled:
            self.stderr.write(
                f"hyperparameter search: {params.trials} trials on fold 1's training data ...",
                style_func=_plain,
            )
        progress = EpochProgress(params.folds, params.epochs, enabled=enabled)
        try:
            model = train_model(run=run, name=options["name"], on_epoch=progress)
        except (TrainingDataError, TrainingRunStateError, MLEngineError) as exc:
            progress.close(complete=False)
            raise CommandError(f"training run {run.pk} failed: {exc}") from None
        except BaseException:
            progress.close(complete=False)
            raise
        progress.close(complete=True)
        return model

    def _enqueue(self, run: TrainingRun, options: dict[str, Any]) -> None:
        """Queue the run for a worker; report the outcome when the queue ran it inline."""
        from django_q.tasks import async_task, fetch

        activate_as = ACTOR if options["activate"] else None
        task_id = async_task(
            TRAIN_TASK,
            run.pk,
            options["name"],
            activate_as,
            options["force_activate"],
            task_name=f"train-{run.pk}",
        )
        done = fetch(task_id)  # only set already when the cluster runs tasks inline (sync)
        run.refresh_from_db()
        if options["json"]:
            out = {"run": run.pk, "task": task_id, "status": run.status}
            if done is not None:
                out["result"] = done.result if done.success else None
                out["error"] = None if done.success else run.error or str(done.result)
            self.stdout.write(json.dumps(out, indent=2))
        else:
            self.stdout.write(f"training run {run.pk} queued as django-q task {task_id}")
            if done is not None:
                outcome = "succeeded" if done.success else f"failed: {run.error or done.result}"
                self.stdout.write(f"task {task_id} {outcome}")
        if done is not None and not done.success:
            raise CommandError(f"training run {run.pk} failed: {run.error or done.result}")

    def _report(self, run: TrainingRun, model: MLModel) -> None:
        """Print the data used, the out-of-sample table next to the baselines, the verdict."""
        for line in report_lines(run, model):
            self.stdout.write(line)


def outcome_dict(run: TrainingRun, model: MLModel) -> dict[str, Any]:
    """Return the run's outcome as JSON-ready data."""
    metrics = dict(model.metrics)
    return {
        "run": run.pk,
        "status": run.status,
        "model": {
            "id": model.pk,
            "name": model.name,
            "version": model.version,
            "type": model.model_type,
            "active": model.active,
            "artifact_path": model.artifact_path,
            "checksum": model.checksum,
            "symbols": model.symbols,
            "timeframe": model.timeframe,
            "features": len(model.feature_names),
        },
        "data": metrics.pop("data", {}),
        "search": metrics.pop("search", None),
        "evaluation": metrics,
        "verdict": metrics.get("verdict"),
        "has_edge": metrics.get("has_edge"),
        "hyperparameters": model.hyperparameters,
        "fold_metrics": run.fold_metrics,
        "epochs": len(run.epochs),
    }


def report_lines(run: TrainingRun, model: MLModel) -> list[str]:
    """Return the human-readable summary of a completed run."""
    metrics = model.metrics
    data = metrics.get("data", {})
    lines = [
        f"training run {run.pk}: {model.model_type} on {data.get('symbol')} {model.timeframe}, "
        f"{run.start:%Y-%m-%d %H:%M} .. {run.end:%Y-%m-%d %H:%M} UTC",
        _data_line(data),
        f"registered {model.name} v{model.version} "
        f"({'ACTIVE' if model.active else 'inactive'}), {len(model.feature_names)} features, "
        f"sha256 {model.checksum[:16]}…, artifact {model.artifact_path}",
        "",
        f"out-of-sample, {len(run.fold_metrics)} walk-forward folds, "
        f"{metrics['model']['n']} predictions, fees {run.params.get('fee_bps')} bps:",
        *metric_table(metrics),
        "",
        verdict_line(metrics),
        *_all_features_lines(metrics),
        *_feature_group_lines(metrics),
    ]
    return lines


def _feature_group_lines(metrics: dict[str, Any]) -> list[str]:
    """Each data group's contribution (when ``--feature-groups`` was given)."""
    if not metrics.get("feature_groups"):
        return []
    from models_ml.feature_groups import feature_group_lines

    return ["", *feature_group_lines(metrics)]


def features_from(run_id: int) -> dict[str, Any]:
    """Return the training parameters naming the features optimisation run ``run_id`` chose."""
    # Imported here: the optimisation stack (qiskit, scikit-learn) would slow every train start.
    from models_ml.optimization import OptimizationRequestError, chosen_features

    try:
        return {"features": chosen_features(run_id=run_id), "features_from": run_id}
    except OptimizationRequestError as exc:
        raise CommandError(str(exc)) from None


def _all_features_lines(metrics: dict[str, Any]) -> list[str]:
    """Compare the chosen features with all features on the same folds (when chosen)."""
    every = metrics.get("all_features")
    if not every:
        return []
    line = "{}: accuracy {:.4f}, log loss {:.4f}, sharpe {:.2f}"
    return [
        f"features chosen by optimisation run {every['features_from']} vs all features, "
        "same folds:",
        "  " + line.format(f"{len(every['chosen'])} chosen", *_key_metrics(metrics["model"])),
        "  " + line.format(f"all {every['features']}", *_key_metrics(every["model"])),
    ]


def _key_metrics(model: dict[str, Any]) -> tuple[float, float, float]:
    """Return accuracy, log loss and Sharpe of a metrics block."""
    return (model["accuracy"], model["log_loss"], model["sharpe"])


def _data_line(data: dict[str, Any]) -> str:
    """Describe where the training bars came from."""
    text = f"data: {data.get('bars')} bars from the {data.get('source')}"
    if data.get("source") == "simulated":
        text = (
            f"data: {data.get('bars')} SIMULATED bars (--source sim: the simulated market, seed "
            f"{data.get('simulation_seed')}, stored marked simulated, never as real history)"
        )
    if data.get("ignored_symbols"):
        text += f"; {data['note']} ({', '.join(data['ignored_symbols'])} ignored)"
    return text


def metric_table(metrics: dict[str, Any]) -> list[str]:
    """Return the model and baseline rows under a header."""
    header = f"{'predictor':<16}" + "".join(f"{title:>13}" for _, title, _ in METRIC_COLUMNS)
    rows = [header, "-" * len(header)]
    named = [("model", metrics["model"])]
    named += [(name, values) for name, values in metrics["baselines"].items()]
    for name, values in named:
        cells = "".join(f"{_cell(values.get(key), fmt):>13}" for key, _, fmt in METRIC_COLUMNS)
        marker = " *" if name == metrics.get("best_baseline") else ""
        rows.append(f"{name + marker:<16}{cells}")
    rows.append("(* best baseline by accuracy)")
    return rows


def _cell(value: Any, fmt: str) -> str:
    """Format one metric (None: n/a)."""
    return "n/a" if value is None else fmt.format(value)


def verdict_line(metrics: dict[str, Any]) -> str:
    """Return the edge / no-edge verdict with its p-values."""
    verdict = "EDGE" if metrics.get("has_edge") else "NO EDGE"
    best = metrics["best_baseline"]
    return (
        f"verdict: {verdict} (accuracy {metrics['model']['accuracy']:.4f} vs best baseline "
        f"{best} {metrics['baselines'][best]['accuracy']:.4f}; "
        f"p vs chance {metrics['p_value_vs_chance']:.3g}, "
        f"p vs best baseline {metrics['p_value_vs_best_baseline']:.3g})"
    )
