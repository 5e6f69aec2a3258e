"""``manage.py backfill``: download historical bars, resumably, rate-limited, with a gap report."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketdata.constants import BACKFILL_SOURCES
from marketdata.engine.events import TIMEFRAME_SECONDS
from marketdata.models import BackfillJob, Symbol
from marketdata.onchain import ONCHAIN_SOURCES
from marketdata.services import symbols_ensure

if TYPE_CHECKING:
    from marketdata.backfill import BackfillResult, PageSource, SourceOptions

# marketdata.backfill (aiohttp, numpy, psycopg underneath) loads only when a backfill runs, so
# that ``--help`` and the commands importing parse_moment start light.

GAPS_SHOWN = 20
# Why a provider's history has holes that are not download errors.
PROVIDER_GAPS = {
    "polygon": "Polygon omits windows without trades",
    "ccxt:coinbase": "Coinbase omits candles without trades",
    "ccxt:kraken": "Kraken serves only its latest 720 candles",
}


@dataclass(frozen=True, slots=True)
class Plan:
    """What to backfill, parsed from the command line."""

    source: str
    timeframe: str
    start: datetime
    end: datetime
    options: SourceOptions
    enqueue: bool
    progress: bool


def parse_moment(raw: str, flag: str) -> datetime:
    """Parse ``2024-01-01`` (UTC midnight) or an ISO datetime (naive means UTC)."""
    text = raw.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"{flag} {raw!r} is not a date (YYYY-MM-DD) or an ISO datetime (YYYY-MM-DDTHH:MM)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the job is handed back cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Command(BaseCommand):
    help = (
        "Download historical bars for a range into the database. Resumable: run the same command "
        "again after a crash and it continues from the job's cursor. Prints a gap report."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--source",
            required=True,
            choices=[*BACKFILL_SOURCES, *ONCHAIN_SOURCES],
            help="Where the history comes from (sim is stored marked simulated)",
        )
        parser.add_argument("--symbols", help="e.g. BTC-USD,ETH-USD (not for onchain:*)")
        parser.add_argument(
            "--timeframe", default="1m", choices=list(TIMEFRAME_SECONDS), help="Bar timeframe"
        )
        parser.add_argument("--start", required=True, help="UTC date or ISO datetime, inclusive")
        parser.add_argument("--end", required=True, help="UTC date or ISO datetime, exclusive")
        parser.add_argument(
            "--url", help="Provider REST base URL (ccxt: the venue's public API URL)"
        )
        parser.add_argument("--file", help="CSV or Parquet file for --source csv")
        parser.add_argument("--api-key", help="Polygon API key (default: POLYGON_API_KEY)")
        parser.add_argument(
            "--rate",
            type=float,
            help="Requests per minute (default: polygon 5, ccxt the venue's limit, else "
            "unlimited; 0 = unlimited)",
        )
        parser.add_argument("--page-size", type=int, help="Bars per request/page")
        parser.add_argument("--seed", type=int, default=42, help="Seed of --source sim")
        parser.add_argument(
            "--plant-pair",
            action="append",
            default=[],
            metavar="FOLLOWER:LEADER[:BETA[:HALF_LIFE_H[:SIGMA]]]",
            help="--source sim: plant a cointegrated pair (repeatable); the follower's simulated "
            "bars are rewritten from the leader's (backfill both symbols)",
        )
        parser.add_argument(
            "--async",
            dest="enqueue",
            action="store_true",
            help="Queue the job for a django-q2 worker and print the task id",
        )
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar")
        parser.add_argument(
            "--exchange-addresses",
            default="",
            help="onchain: comma-separated exchange addresses, or @FILE with one a line",
        )
        parser.add_argument(
            "--large-threshold", type=float, help="onchain: native amount of a large transfer"
        )
        parser.add_argument("--tokens", default="", help="onchain:eth: ERC-20 contracts to count")

    def handle(self, *args, **options) -> None:
        start = parse_moment(options["start"], "--start")
        end = parse_moment(options["end"], "--end")
        if end <= start:
            raise CommandError(
                f"--end {end:%Y-%m-%d %H:%M} must be after --start {start:%Y-%m-%d %H:%M}"
            )
        if options["source"] in ONCHAIN_SOURCES:
            from marketdata.onchain_command import onchain_backfill_command

            onchain_backfill_command(self, options, start, end)
            return
        plan = Plan(
            source=options["source"],
            timeframe=options["timeframe"],
            start=start,
            end=end,
            options=self._source_options(options["source"], options),
            enqueue=options["enqueue"],
            progress=not options["no_progress"] and sys.stderr.isatty(),
        )
        names = [s.strip().upper() for s in (options["symbols"] or "").split(",") if s.strip()]
        if not names:
            raise CommandError("--symbols needs at least one symbol, e.g. BTC-USD")
        for name in names:
            self._backfill_symbol(name, plan)

    def _source_options(self, source: str, options: dict) -> SourceOptions:
        """Check the source-specific flags and bundle them."""
        from marketdata.backfill import SourceOptions

        file = options["file"]
        if source in ("csv", "tradingview") and not file:
            raise CommandError(f"--source {source} needs --file PATH (a .csv or .parquet file)")
        if source not in ("csv", "tradingview") and file:
            raise CommandError("--file only applies to --source csv or tradingview")
        if file and not Path(file).is_file():
            raise CommandError(f"--file {file}: no such file")
        if options["rate"] is not None and options["rate"] < 0:
            raise CommandError("--rate must be >= 0 requests a minute (0 = unlimited)")
        if options["page_size"] is not None and options["page_size"] < 1:
            raise CommandError("--page-size must be >= 1")
        if options["enqueue"] and options["api_key"]:
            raise CommandError(
                "--api-key is not sent through the task queue; set POLYGON_API_KEY for workers"
            )
        return SourceOptions(
            url=options["url"],
            api_key=options["api_key"],
            file=str(Path(file).resolve()) if file else None,
            page_size=options["page_size"],
            rate_per_minute=options["rate"],
            seed=options["seed"],
            plant_pairs=tuple(options["plant_pair"]),
        )

    def _backfill_symbol(self, name: str, plan: Plan) -> None:
        """Find or create the job for one symbol and run it here or on a worker."""
        from marketdata.backfill import BackfillError, backfill_job_get_or_create, page_source_open

        try:
            # The source first: a refused request should leave no rows behind.
            pages = page_source_open(plan.source, name, plan.timeframe, plan.options)
        except BackfillError as exc:
            raise CommandError(str(exc)) from exc
        try:
            symbol = self._symbol(name)
            job, resumed = backfill_job_get_or_create(
                source=plan.source,
                symbol=symbol,
                timeframe=plan.timeframe,
                start=plan.start,
                end=plan.end,
            )
            self._announce(job, resumed)
            if plan.enqueue:
                self._enqueue(job, plan.options)  # the worker opens its own source
                return
            result = self._run(job, pages, plan)
        except BackfillError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            pages.close()
        self._report(result)

    def _symbol(self, name: str) -> Symbol:
        try:
            return symbols_ensure([name])[0]
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

    def _run(self, job: BackfillJob, pages: PageSource, plan: Plan) -> BackfillResult:
        from marketdata.backfill import backfill_execute

        try:
            with sigterm_as_interrupt():
                return backfill_execute(
                    job, pages, progress=plan.progress, progress_file=sys.stderr
                )
        except KeyboardInterrupt:
            job.refresh_from_db()
            raise CommandError(
                f"interrupted: job {job.pk} stopped at {job.cursor:%Y-%m-%d %H:%M:%S} UTC; "
                "run the same command again to resume"
            ) from None

    def _announce(self, job: BackfillJob, resumed: bool) -> None:
        span = f"{job.start:%Y-%m-%d %H:%M} .. {job.end:%Y-%m-%d %H:%M} UTC"
        what = f"{job.source} {job.symbol.name} {job.timeframe} {span}"
        if resumed:
            cursor = job.cursor or job.start
            self.stdout.write(
                f"job {job.pk}: resuming {what} at {cursor:%Y-%m-%d %H:%M:%S} "
                f"({job.rows_written} bars written in {job.pages} pages so far)"
            )
        else:
            self.stdout.write(f"job {job.pk}: new backfill {what}")

    def _enqueue(self, job: BackfillJob, source_options: SourceOptions) -> None:
        from django_q.tasks import async_task, fetch

        from marketdata.tasks import BACKFILL_TASK

        task_id = async_task(
            BACKFILL_TASK,
            job.pk,
            source_options.task_kwargs(),
            task_name=f"backfill-{job.pk}",
        )
        self.stdout.write(f"job {job.pk}: queued as django-q task {task_id}")
        done = fetch(task_id)  # only set already when the cluster runs tasks inline (sync)
        if done is not None:
            outcome = "succeeded" if done.success else f"failed: {done.result}"
            self.stdout.write(f"task {task_id} {outcome}")

    def _report(self, result: BackfillResult) -> None:
        report = result.report
        self.stdout.write(
            self.style.SUCCESS(
                f"job {result.job.pk} completed: {result.rows_written} bars written in "
                f"{result.pages} pages; {report.stored} of {report.expected} "
                f"{result.job.timeframe} windows stored; {result.quarantined} quarantined"
            )
        )
        if result.truncated:
            self.stdout.write(f"note: the source stopped early once: {result.truncated}")
        if not report.ranges:
            self.stdout.write(f"gap report: no missing {result.job.timeframe} bars")
            return
        share = 100.0 * report.missing / report.expected if report.expected else 0.0
        self.stdout.write(
            f"gap report: {report.missing} missing {result.job.timeframe} bars ({share:.2f} %) in "
            f"{len(report.ranges)} ranges"
        )
        why = PROVIDER_GAPS.get(result.job.source)
        if why:
            self.stdout.write(
                f"  ({why}: these are gaps in the provider's data, not download errors)"
            )
        for gap in report.ranges[:GAPS_SHOWN]:
            self.stdout.write(
                f"  {gap.start:%Y-%m-%d %H:%M:%S} .. {gap.end:%Y-%m-%d %H:%M:%S} UTC: "
                f"{gap.missing} missing"
            )
        if len(report.ranges) > GAPS_SHOWN:
            self.stdout.write(
                f"  ... and {len(report.ranges) - GAPS_SHOWN} more (see job {result.job.pk}'s gaps)"
            )
