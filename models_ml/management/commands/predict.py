"""``manage.py predict``: a model's predictions over a range, written to CSV or stored."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backtesting.management.commands.backtest import parse_day
from marketdata.data_source import add_data_source_argument
from marketdata.management.commands.ingest import parse_symbols
from models_ml.models import MLModel
from models_ml.selectors import model_names
from models_ml.services import TrainingDataError, predictions_compute, predictions_store


class Command(BaseCommand):
    help = (
        "Predict every bar of a range with a model version and write the predictions: as CSV "
        "(--out FILE, or stdout), and/or as stored Prediction rows (--store)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--model", required=True, help="Model name (see the admin's list)")
        parser.add_argument(
            "--model-version",
            dest="model_version",
            type=int,
            help="Version (default: the active one)",
        )
        parser.add_argument("--symbols", required=True, help="Comma-separated, e.g. BTC-USD")
        parser.add_argument("--start", required=True, help="UTC date or ISO datetime, inclusive")
        parser.add_argument("--end", required=True, help="UTC date or ISO datetime, exclusive")
        add_data_source_argument(parser)
        parser.add_argument(
            "--out",
            metavar="FILE.csv",
            help="Write the predictions to this CSV file (default: CSV on stdout unless --store)",
        )
        parser.add_argument(
            "--store",
            action="store_true",
            help="Store the predictions as Prediction rows (idempotent)",
        )
        parser.add_argument(
            "--allow-other-symbol",
            action="store_true",
            help="Predict symbols the model was not trained on (refused without this flag)",
        )

    def handle(self, *args, **options) -> None:
        model = self._model(options)
        start, end = parse_day(options["start"], "--start"), parse_day(options["end"], "--end")
        if end <= start:
            raise CommandError("--end must be after --start")
        if options["out"] and not options["out"].lower().endswith(".csv"):
            raise CommandError(f"--out must end in .csv, got {options['out']!r}")
        symbols = parse_symbols(options["symbols"])
        self._check_symbols(model, symbols, options["allow_other_symbol"])
        batches = []
        for symbol in symbols:
            try:
                batches.append(
                    predictions_compute(
                        model=model,
                        symbol=symbol,
                        start=start,
                        end=end,
                        source=options["source"],
                    )
                )
            except TrainingDataError as exc:
                raise CommandError(str(exc)) from exc
        self._write(batches, model, options)

    def _model(self, options) -> MLModel:
        name, version = options["model"], options["model_version"]
        versions = MLModel.objects.filter(name=name)
        model = (
            versions.filter(version=version).first()
            if version
            else versions.filter(active=True).first()
        )
        if model is not None:
            return model
        names = model_names()
        if name not in names:
            known = ", ".join(names) if names else "none (train one: manage.py train)"
            raise CommandError(f"no model named {name!r}; registered models: {known}")
        if version:
            have = ", ".join(str(v) for v in versions.values_list("version", flat=True))
            raise CommandError(f"model {name!r} has no version {version} (versions: {have})")
        raise CommandError(
            f"model {name!r} has no active version: activate one in the admin, or pass "
            "--model-version N"
        )

    def _check_symbols(self, model: MLModel, symbols: list[str], allowed: bool) -> None:
        """Refuse (or, allowed, warn loudly about) symbols the model was not trained on."""
        trained = list(model.symbols or [])
        foreign = [s for s in symbols if trained and s not in trained]
        if not foreign:
            return
        detail = f"{model} was trained on {', '.join(trained)}, not {', '.join(foreign)}"
        if not allowed:
            raise CommandError(f"{detail}: pass --allow-other-symbol to predict them anyway")
        self.stderr.write(
            f"WARNING: {detail}; its predictions there are untested.",
            style_func=self.style.ERROR,
        )

    def _write(self, batches: list, model: MLModel, options) -> None:
        import pandas as pd

        table = pd.concat([b.table() for b in batches], ignore_index=True)
        csv = {"index": False, "date_format": "%Y-%m-%dT%H:%M:%SZ"}
        if options["out"]:
            table.to_csv(options["out"], **csv)
            self.stdout.write(f"{len(table)} predictions of {model} written to {options['out']}")
        elif not options["store"]:
            self.stdout.write(table.to_csv(**csv), ending="")
        if options["store"]:
            for batch in batches:
                count = predictions_store(batch=batch)
                self.stdout.write(f"{batch.symbol}: {count} bars predicted and stored ({model})")
