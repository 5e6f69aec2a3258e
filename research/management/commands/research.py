"""``manage.py research pairs|microstructure|patterns|overfitting|backtest``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from marketdata.data_source import add_data_source_argument
from research.engine.errors import ResearchInputError
from research.models import Finding, ResearchRun

# research.services and research.selectors load scipy, statsmodels and pandas (seconds): the
# methods that run a study import them, so `research --help` starts without them.

STUDIES = ("pairs", "microstructure", "patterns", "overfitting")


def parse_moment(value: str | None, flag: str) -> datetime:
    """Parse YYYY-MM-DD (or an ISO datetime) as UTC; refuse a missing or bad value."""
    if not value:
        raise CommandError(f"{flag} is required (YYYY-MM-DD)")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{flag}: expected YYYY-MM-DD, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CommandError(f"{flag}: expected integers like 1,5,20, got {text!r}") from None


class Command(BaseCommand):
    help = (
        "Run a research study (pairs, microstructure, patterns, overfitting) and store its "
        "findings, or backtest the strategy a finding proposes (backtest --finding ID)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("study", choices=[*STUDIES, "backtest"])
        parser.add_argument(
            "--symbols", default="BTC-USD,ETH-USD", help="Comma-separated symbols to study"
        )
        parser.add_argument("--timeframe", default="1h", help="Bar timeframe, e.g. 1m, 1h, 1d")
        add_data_source_argument(parser)
        parser.add_argument("--start", help="UTC date or ISO datetime, inclusive")
        parser.add_argument("--end", help="UTC date or ISO datetime, exclusive")
        parser.add_argument("--alpha", type=float, default=0.01, help="significance level")
        parser.add_argument("--correction", default="bh", help="bh (Benjamini-Hochberg) or holm")
        parser.add_argument("--holdout", type=float, default=0.3, help="pairs: held-out share")
        parser.add_argument("--entry", type=float, default=2.0, help="pairs strategy: entry z")
        parser.add_argument("--exit", type=float, default=0.5, help="pairs strategy: exit z")
        parser.add_argument("--horizons", default="1,5,20", help="patterns: forward bars")
        parser.add_argument("--no-candles", action="store_true", help="patterns: chart only")
        parser.add_argument(
            "--overlap",
            choices=["thin", "hac"],
            default="thin",
            help="patterns: overlapping forward returns at horizon h > 1 -> non-overlapping "
            "samples (thin) or Newey-West standard errors (hac)",
        )
        parser.add_argument(
            "--levels", type=int, default=5, help="microstructure: book levels of depth"
        )
        parser.add_argument(
            "--plant-pair",
            action="append",
            default=[],
            metavar="FOLLOWER:LEADER[:BETA[:HALF_LIFE_H[:SIGMA]]]",
            help="--source sim: plant a cointegrated pair in the simulated bars first "
            "(stored marked simulated, as backfill --source sim --plant-pair)",
        )
        parser.add_argument("--interval", default="1min", help="microstructure: bucket")
        parser.add_argument(
            "--permutations", type=int, default=200, help="Permutations for permutation tests"
        )
        parser.add_argument("--strategy", help="overfitting: strategy whose grid is judged")
        parser.add_argument(
            "--space",
            action="append",
            default=[],
            metavar="NAME=LO:HI[:STEP]",
            help="overfitting: one parameter's grid (repeatable)",
        )
        parser.add_argument("--blocks", type=int, default=16, help="overfitting: CSCV blocks")
        parser.add_argument("--seed", type=int, default=0, help="Seed of every random draw")
        parser.add_argument("--finding", type=int, help="backtest: the finding's id")
        parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
        parser.add_argument("--json", action="store_true", help="Print the run as JSON")
        parser.add_argument(
            "--async",
            dest="run_async",
            action="store_true",
            help="Queue the study for a django-q2 worker and print the task id",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        start = parse_moment(options["start"], "--start")
        end = parse_moment(options["end"], "--end")
        if options["study"] == "backtest":
            return self._backtest(options, start, end)
        from research.services import research_run_create, research_run_execute

        symbols = [s.strip() for s in options["symbols"].split(",") if s.strip()]
        try:
            run = research_run_create(
                study=options["study"],
                symbols=symbols,
                timeframe=options["timeframe"],
                start=start,
                end=end,
                params=self._params(options),
            )
        except ResearchInputError as exc:
            raise CommandError(str(exc)) from None
        if options["run_async"]:
            return self._enqueue(run, options)
        show = sys.stderr.isatty() and not options["json"]
        bar = tqdm(total=1, desc="study", disable=not show)

        def progress(stage: str, done: int, total: int) -> None:
            bar.set_description_str(stage, refresh=False)
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            research_run_execute(run=run, report=not options["no_report"], progress=progress)
        except Exception as exc:  # the run row records it as failed; the user gets one line
            raise CommandError(f"research run #{run.pk} failed: {exc}") from exc
        except SystemExit as exc:  # a strategy's sys.exit()/exit(): not a clean finish (was 0)
            raise CommandError(
                f"research run #{run.pk} failed: SystemExit({exc.code!r}) raised inside it "
                "(does the strategy call sys.exit() or exit()?)"
            ) from exc
        finally:
            bar.close()
        self._print(run.pk, options["json"])

    def _params(self, options: dict[str, Any]) -> dict[str, Any]:
        study = options["study"]
        horizons = _ints(options["horizons"], "--horizons") if study == "patterns" else ()
        names = ("alpha", "correction", "holdout", "entry", "exit", "overlap", "interval")
        names += ("levels", "permutations", "strategy", "space", "blocks", "seed", "source")
        from research.services import study_params

        return study_params(
            study,
            plant_pairs=options["plant_pair"],
            horizons=horizons,
            candles=not options["no_candles"],
            **{name: options[name] for name in names},
        )

    def _enqueue(self, run: ResearchRun, options: dict[str, Any]) -> None:
        from django_q.tasks import async_task

        task_id = async_task("research.tasks.research_task", run.pk)
        if options["json"]:
            self.stdout.write(json.dumps({"run": run.pk, "task": task_id, "status": run.status}))
        else:
            self.stdout.write(f"research run #{run.pk} queued (task {task_id})")

    def _print(self, run_id: int, as_json: bool) -> None:
        from research.selectors import run_with_findings

        run, findings = run_with_findings(run_id)
        if as_json:
            self.stdout.write(json.dumps(_as_dict(run, findings), default=str))
            return
        self.stdout.write(f"research run #{run.pk} {run.title}: {run.status}")
        for f in findings:
            mark = "*" if f.significant else " "
            self.stdout.write(
                f"{mark} #{f.pk} {f.title}  stat={_fmt(f.statistic)} p={_fmt(f.p_value)} "
                f"effect={_fmt(f.effect_size)}"
            )
        if run.summary.get("report"):
            self.stdout.write(f"report: {run.summary['report']}")

    def _backtest(self, options: dict[str, Any], start: datetime, end: datetime) -> None:
        if options["finding"] is None:
            raise CommandError("backtest needs --finding ID")
        from research.services import finding_backtest

        finding = Finding.objects.select_related("run").filter(pk=options["finding"]).first()
        if finding is None:
            raise CommandError(f"no finding #{options['finding']}")
        try:
            bt = finding_backtest(finding=finding, start=start, end=end)
        except ResearchInputError as exc:
            raise CommandError(str(exc)) from None
        payload = {
            "finding": finding.pk,
            "backtest": bt.pk,
            "status": bt.status,
            "metrics": bt.metrics,
        }
        if options["json"]:
            self.stdout.write(json.dumps(payload, default=str))
        else:
            self.stdout.write(f"backtest #{bt.pk} of finding #{finding.pk}: {bt.status}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _as_dict(run: ResearchRun, findings: list[Finding]) -> dict[str, Any]:
    return {
        "run": run.pk,
        "kind": run.kind,
        "status": run.status,
        "summary": run.summary,
        "findings": [
            {
                "id": f.pk,
                "title": f.title,
                "statistic": f.statistic,
                "p_value": f.p_value,
                "effect_size": f.effect_size,
                "significant": f.significant,
                "details": f.details,
            }
            for f in findings
        ],
    }
