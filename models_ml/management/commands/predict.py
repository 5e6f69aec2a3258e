"""``manage.py predict``: batch predictions of a model over stored bars (e.g. after a backfill)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backtesting.management.commands.backtest import parse_day
from marketdata.management.commands.ingest import parse_symbols
from models_ml.models import MLModel
from models_ml.services import TrainingDataError, predictions_backfill


class Command(BaseCommand):
    help = "Predict every stored bar of a range with a model version and store the predictions."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--model", required=True, help="Model name")
        parser.add_argument(
            "--model-version",
            dest="model_version",
            type=int,
            help="Version (default: the active one)",
        )
        parser.add_argument("--symbols", required=True)
        parser.add_argument("--start", required=True)
        parser.add_argument("--end", required=True)

    def handle(self, *args, **options) -> None:
        versions = MLModel.objects.filter(name=options["model"])
        model = (
            versions.filter(version=options["model_version"]).first()
            if options["model_version"]
            else versions.filter(active=True).first()
        )
        if model is None:
            which = (
                f"version {options['version']}" if options["model_version"] else "active version"
            )
            raise CommandError(f"model {options['model']!r} has no {which}")
        start, end = parse_day(options["start"], "--start"), parse_day(options["end"], "--end")
        if end <= start:
            raise CommandError("--end must be after --start")
        for symbol in parse_symbols(options["symbols"]):
            try:
                count = predictions_backfill(model=model, symbol=symbol, start=start, end=end)
            except TrainingDataError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"{symbol}: {count} bars predicted with {model}")
