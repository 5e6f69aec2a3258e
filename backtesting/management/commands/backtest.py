"""``manage.py backtest``: run a strategy over stored (or simulated) bars, optimise, replay."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from backtesting.cli_options import add_backtest_run_arguments
from backtesting.engine.errors import BacktestError
from backtesting.engine.glossary import format_metric
from backtesting.models import BacktestRun
from trading.models import Account

# The engine, services and replay (pandas, numpy, plotly) are imported inside the methods that
# run: `backtest --help` and every other command start without them (tests/test_startup.py).

METRICS_SHOWN = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "win_rate",
    "profit_factor",
    "trades",
    "exposure_time",
    "alpha",
    "beta",
)


TRIAL_METRICS = ("total_return", "sharpe", "max_drawdown", "trades")
TRIALS_SHOWN = 20


def _cell(value) -> str:
    """Format one table cell: integers as integers, other numbers to 4 decimals."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value)}"
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.4f}"
    return str(value)


def _row(cells: list[str], widths: list[int]) -> str:
    """Return one right-aligned table row."""
    return "    " + " ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))


def _sort_key(score, best_high: bool) -> tuple[int, float]:
    """Order trials best first; trials without a finite score last."""
    if not isinstance(score, int | float) or score != score:
        return (1, 0.0)
    return (0, -score if best_high else score)


def _since_process_start() -> float:
    """Return the seconds since this process started (interpreter and Django start-up included):
    /proc's start time after boot against its uptime, to the clock tick (10 ms)."""
    from pathlib import Path

    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, counted from field 3
    return float(Path("/proc/uptime").read_text().split()[0]) - started


def _cpu_seconds() -> float:
    """Return the CPU seconds (user and system) this process has used since it started.

    ``process_time`` counts from the process's start, to the nanosecond: the same clock the
    services' phases use, so the phases add up to the total exactly.
    """
    return time.process_time()


# A prefetch is only started for what the run will surely read (one plain run, a few symbols,
# a range the checks accept): a refused request must not leave a large read behind.
PREFETCH_MAX_SYMBOLS = 4
PREFETCH_MAX_BARS = 5_000_000  # backtesting.request.MAX_BARS_PER_SYMBOL


def _prefetch_bars(options: dict, start: datetime, end: datetime) -> list[tuple]:
    """Start reading a plain run's bars on PostgreSQL before the slow imports (see bars_prefetch).

    The run reads its bars through ``bars_frame``, which takes this read when the validated
    request asks for the same bars; otherwise it is simply not used.
    """
    from marketdata.engine.events import TIMEFRAME_SECONDS
    from marketdata.selectors import bars_prefetch

    if options["optimize"] or options["run_async"] or options["config"]:
        return []
    timeframe = options["timeframe"]
    names = [s.strip().upper() for s in (options["symbols"] or "").split(",") if s.strip()]
    seconds = TIMEFRAME_SECONDS.get(timeframe)
    if (
        not seconds
        or not names
        or len(names) > PREFETCH_MAX_SYMBOLS
        or len(set(names)) < len(names)
    ):
        return []
    if (end - start).total_seconds() / seconds > PREFETCH_MAX_BARS:
        return []
    keys = [
        bars_prefetch(
            symbol=name, timeframe=timeframe, start=start, end=end,
            simulated=options["source"] == "sim",
        )
        for name in names
    ]  # fmt: skip
    return [k for k in keys if k is not None]


def parse_day(value: str, flag: str) -> datetime:
    """Parse YYYY-MM-DD (or ISO datetime) as UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{flag}: expected YYYY-MM-DD, got {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Backtest a strategy (event-driven, same engine as live), optimise it, or replay."
    # The system checks import every URL, view and serializer (seconds; most of the command's
    # start-up) to judge the web configuration, which a backtest never uses: `manage.py check`
    # and `make lint` run them. Migrations are still checked by the database itself.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        from trading.engine.strategies import available_strategies  # numpy: not for parse_day

        parser.add_argument(
            "--strategy",
            help=f"One of: {', '.join(available_strategies())}; a class in STRATEGY_PATHS; "
            "or path/to/file.py:ClassName",
        )
        parser.add_argument(
            "--lookahead-check",
            action="store_true",
            help="Before the run: the truncation check and, for signal-style strategies, the "
            "recursive check (indicators on a growing window equal the whole frame's); a "
            "strategy that peeks is refused",
        )
        parser.add_argument(
            "--config",
            metavar="NAME",
            help="A named parameter set (StrategyConfig, edited in the admin): its strategy, "
            "parameters and symbols; --param overrides",
        )
        parser.add_argument("--symbols", default="BTC-USD", help="Comma-separated symbols")
        parser.add_argument("--timeframe", default="1h", help="Bar timeframe, e.g. 1m, 1h, 1d")
        parser.add_argument("--start", help="UTC date or ISO datetime, inclusive (required)")
        parser.add_argument("--end", help="UTC date or ISO datetime, exclusive (required)")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="Strategy parameter (repeatable), e.g. fast=10",
        )
        parser.add_argument(
            "--fill",
            choices=["next_open", "close", "book"],
            default="next_open",
            help="Fill orders at the next bar's open, at the signal bar's close, or against a "
            "simulated book",
        )
        parser.add_argument("--fees-bps", default="10", help="Taker fee in basis points")
        parser.add_argument("--slippage-bps", default="0", help="Fixed slippage in basis points")
        parser.add_argument("--capital", default="100000", help="Starting cash")
        parser.add_argument(
            "--periods-per-year",
            metavar="N",
            help="Bars per year for annualising (default: from the bars' own calendar: 24/7, "
            "252 equity sessions, or 5-day FX weeks)",
        )
        risk = parser.add_mutually_exclusive_group()
        risk.add_argument(
            "--risk-account",
            metavar="NAME",
            help="Apply the risk limits and buying power runtrader applies to this account "
            "(default: DEFAULT_ACCOUNT's, or a new account's defaults if it does not exist)",
        )
        risk.add_argument(
            "--no-risk",
            action="store_true",
            help="Attach no risk checks (buying power still applies)",
        )
        add_backtest_run_arguments(parser)
        parser.add_argument(
            "--optimize",
            choices=["grid", "random", "genetic", "walkforward"],
            help="Sweep the --space instead of one run; prints a table of trials",
        )
        parser.add_argument(
            "--space",
            action="append",
            default=[],
            metavar="NAME=LO:HI[:STEP]",
            help="One parameter's range for --optimize (repeatable)",
        )
        parser.add_argument(
            "--objective", default="sharpe", help="Metric --optimize maximises (e.g. sharpe)"
        )
        parser.add_argument("--trials", type=int, default=20, help="random-search draws")
        parser.add_argument("--train-bars", type=int, help="walk-forward in-sample bars")
        parser.add_argument("--test-bars", type=int, help="walk-forward out-of-sample bars")
        parser.add_argument("--anchored", action="store_true", help="anchored walk-forward")
        parser.add_argument(
            "--montecarlo",
            type=int,
            default=0,
            metavar="N",
            help="N Monte Carlo resamples of the trades and returns; prints their percentiles",
        )
        parser.add_argument(
            "--distributed",
            action="store_true",
            default=None,
            help="Send sweep trials to qcluster workers (default with REDIS_URL)",
        )
        parser.add_argument("--report", help="HTML report path (default data/reports/)")
        parser.add_argument(
            "--json", action="store_true", help="Print the run as JSON (no progress bars)"
        )
        parser.add_argument(
            "--async",
            dest="run_async",
            action="store_true",
            help="Queue the run for a django-q2 worker and print the task id",
        )
        parser.add_argument(
            "--owner",
            metavar="USERNAME",
            help="The user the run belongs to (its report is served to them by the API)",
        )
        parser.add_argument(
            "--profile",
            action="store_true",
            help="Print where the time went: start-up, checks, load, run, Monte Carlo, report, "
            "store (single event-driven runs; other modes print start-up and the total)",
        )
        parser.add_argument(
            "--replay-account",
            metavar="NAME",
            help="Replay a recorded paper session and report drift",
        )

    def handle(self, *args, **options) -> None:
        self._phases = {"start-up": _since_process_start()} if options["profile"] else None
        # The same phases in CPU seconds of this process: on a shared machine the wall clock
        # also counts the time other processes held the CPU.
        self._cpu = {"start-up": _cpu_seconds()} if options["profile"] else None
        self._lap = self._began = time.perf_counter()
        self._cpu_began = _cpu_seconds()
        if not options["start"] or not options["end"]:
            raise CommandError("--start and --end are required")
        start = parse_day(options["start"], "--start")
        end = parse_day(options["end"], "--end")
        if end <= start:
            raise CommandError("--end must be after --start")
        if options["replay_account"]:
            return self._replay(options["replay_account"], start, end, options)
        prefetched = _prefetch_bars(options, start, end)  # read while the engine is imported
        try:
            self._run(options, start, end)
        finally:
            from marketdata.selectors import bars_prefetch_forget

            bars_prefetch_forget(prefetched)  # any the run did not take

    def _run(self, options, start: datetime, end: datetime) -> None:
        """Validate, record and execute the run, then print it."""
        from backtesting.request import one_line, validated_request
        from backtesting.services import BacktestInputError, SweepFailed, backtest_run_create

        # Every flag is checked before the run row exists: bad input leaves nothing behind.
        try:
            request = validated_request(options, start, end)
            self._check_in_sample(request, options["allow_in_sample"])
            if options["lookahead_check"]:
                self._lookahead_check(request)
            if options["vectorised"]:
                self._check_vectorised(request, options)
            run = backtest_run_create(**request, owner=self._owner(options["owner"]))
        except BacktestInputError as exc:
            raise CommandError(str(exc)) from exc
        if options["run_async"]:
            return self._enqueue(run, options)
        if self._phases is not None:
            self._phases["checks"] = time.perf_counter() - self._lap
            self._cpu["checks"] = _cpu_seconds() - self._cpu_began
        try:
            self._execute_owned(run, options)
        except (BacktestInputError, BacktestError, SweepFailed, ValueError) as exc:
            raise CommandError(one_line(exc)) from exc
        except SystemExit as exc:  # strategy code called sys.exit()/exit(): not a clean finish
            raise CommandError(
                f"the run stopped on SystemExit({exc.code!r}) raised inside it (does the "
                f"strategy call sys.exit() or exit()?); run #{run.pk} failed"
            ) from exc
        run.refresh_from_db()
        if self._phases is not None:
            # One clock for the phases and the total: start-up is to /proc's tick, the rest exact.
            elapsed = time.perf_counter() - self._began
            self._phases["total"] = self._phases["start-up"] + elapsed
            self._cpu["total"] = _cpu_seconds()
        self._print(run, options["json"])
        self._print_profile(options["json"])

    def _print_profile(self, as_json: bool) -> None:
        """Print the phases' seconds and shares of the total, wall and CPU (``--profile``)."""
        phases, cpu = self._phases, self._cpu
        if phases is None:
            return
        total, cpu_total = phases.pop("total"), cpu.pop("total")
        phases["other"] = max(0.0, total - sum(phases.values()))
        cpu = {name: cpu.get(name, 0.0) for name in phases}
        cpu["other"] = max(0.0, cpu_total - sum(cpu.values()))
        if as_json:
            self.stdout.write(
                json.dumps(
                    {
                        "profile": phases | {"total": total},
                        "profile_cpu": cpu | {"total": cpu_total},
                    }
                )
            )
            return
        self.stdout.write(
            f"profile (seconds, {total:.3f} in all since the process started; CPU {cpu_total:.3f})"
        )
        for name, seconds in phases.items():
            self.stdout.write(
                f"  {name:<16} {seconds:>8.3f}  {seconds / total:>6.1%}   cpu {cpu[name]:>7.3f}"
            )

    @staticmethod
    def _owner(username: str | None):
        if not username:
            return None
        from django.contrib.auth import get_user_model

        from backtesting.services import BacktestInputError

        owner = get_user_model().objects.filter(username=username).first()
        if owner is None:
            raise BacktestInputError(f"--owner: no user named {username!r}")
        return owner

    def _check_in_sample(self, request: dict, allowed: bool) -> None:
        """Refuse (or, with --allow-in-sample, loudly flag) a model_signal run in-sample."""
        if request["strategy"] != "model_signal":
            return
        from backtesting.services import BacktestInputError, model_signal_in_sample

        problems = model_signal_in_sample(
            symbols=request["symbols"],
            timeframe=request["timeframe"],
            start=request["start"],
            end=request["end"],
        )
        if not problems:
            return
        detail = "; ".join(problems)
        if not allowed:
            raise BacktestInputError(
                f"model_signal over its model's own training range is in-sample ({detail}): "
                "start the backtest after the training end, or pass --allow-in-sample"
            )
        self.stderr.write(
            f"WARNING: IN-SAMPLE BACKTEST: {detail}. These figures show how well the model "
            "fits its training data, not an edge."
        )

    @staticmethod
    def _check_vectorised(request: dict, options) -> None:
        from backtesting.services import BacktestInputError
        from backtesting.vectorised_run import vectorised_check

        if options["run_async"] or options["montecarlo"] or options["report"]:
            raise BacktestInputError(
                "--vectorised runs here and stores trades and metrics only: drop --async, "
                "--montecarlo and --report"
            )
        vectorised_check(
            strategy=request["strategy"],
            symbols=request["symbols"],
            costs=request["costs"],
            optimize=request["optimize"],
        )

    def _execute_owned(self, run: BacktestRun, options) -> None:
        """Run it here; a sweep with its options stored, as a worker does.

        The sweep service works it under its owner lock (``services.sweep_owned``): without
        it the every-minute takeover saw a live foreground sweep as orphaned and ran it a second
        time; with the options a sweep this process leaves (kill -9) resumes.
        """
        from backtesting.run_control import task_options
        from backtesting.sweep_takeover import is_sweep, sweep_run_owned

        if not is_sweep(run):
            self._execute(run, options)
            return
        skipped = sweep_run_owned(run, task_options(options), lambda: self._execute(run, options))
        if skipped is not None:
            raise CommandError(f"backtest #{run.pk}: {skipped['skipped']}")

    def _execute(self, run: BacktestRun, options) -> None:
        from backtesting.run_owner import backtest_runs_reap

        backtest_runs_reap()  # runs a killed backtest left "running" are failed, as they are
        method = options["optimize"]
        if options["vectorised"]:
            from backtesting.vectorised_run import backtest_execute_vectorised

            backtest_execute_vectorised(run=run)
            return
        from backtesting.services import (
            backtest_execute,
            parse_space,
            sweep_execute,
            walkforward_execute,
        )

        show = sys.stderr.isatty() and not options["json"]

        def counter(bar: tqdm):
            def update(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            return update

        if method in {"grid", "random", "genetic"}:
            bar = tqdm(total=0, desc=f"{method} trials", unit="trial", disable=not show)
            trials = counter(bar)
            sweep_execute(
                parent=run,
                method=method,
                space=parse_space(run.strategy, options["space"]),
                objective=options["objective"],
                n_iter=options["trials"],
                progress=trials,
                report=options["report"],
                montecarlo=options["montecarlo"],
                distributed=options["distributed"],
            )
            bar.close()
        elif method == "walkforward":
            bar = tqdm(total=0, desc="walk-forward windows", unit="window", disable=not show)
            walkforward_execute(
                parent=run,
                space=parse_space(run.strategy, options["space"]),
                train=options["train_bars"],
                test=options["test_bars"],
                anchored=options["anchored"],
                objective=options["objective"],
                report=options["report"],
                progress=counter(bar),
            )
            bar.close()
        else:
            bar = tqdm(total=100, desc="backtest", unit="%", disable=not show)
            backtest_execute(
                run=run,
                report=options["report"],
                montecarlo=options["montecarlo"],
                progress=lambda f: bar.update(int(f * 100) - bar.n),
                phases=self._phases,
                cpu_phases=self._cpu,
            )
            bar.close()

    def _lookahead_check(self, request: dict) -> None:
        """Run the look-ahead checks on the run's bars; peeking refuses the run (nothing kept)."""
        from backtesting.services import BacktestInputError, bars_for
        from backtesting.strategy_checks import lookahead_reports

        bars, _ = bars_for(
            symbols=request["symbols"],
            timeframe=request["timeframe"],
            start=request["start"],
            end=request["end"],
            source=request["data_source"],
        )
        columns = ["ts", "symbol", "open", "high", "low", "close", "volume"]
        reports = lookahead_reports(request["strategy"], request["params"], bars[columns])
        for report in reports:
            self.stdout.write(("ok    " if report.ok else "FAIL  ") + report.message())
        failed = [r.message() for r in reports if not r.ok]
        if failed:
            raise BacktestInputError("look-ahead found: " + "; ".join(failed))

    def _enqueue(self, run: BacktestRun, options) -> None:
        from django_q.tasks import async_task

        from backtesting.run_control import task_options

        task_id = async_task(
            "backtesting.tasks.backtest_task",
            run.pk,
            task_options(options),  # walk-forward's windows too
            group=run.task_group or None,
        )
        self.stdout.write(
            json.dumps({"run": run.pk, "task": task_id})
            if options["json"]
            else f"queued backtest #{run.pk} as task {task_id}"
        )

    def _print(self, run: BacktestRun, as_json: bool) -> None:
        m = run.metrics
        if as_json:
            self.stdout.write(
                json.dumps(
                    {"run": run.pk, "status": run.status, "metrics": m, "report": run.report_path},
                    default=str,
                )
            )
            return
        data = ", ".join(f"{s}: {o}" for s, o in (m.get("data") or {}).items())
        self.stdout.write(
            f"backtest #{run.pk} {run.strategy} {run.params} "
            f"{','.join(run.symbols)} {run.timeframe} [{run.status}]  data: {data}"
        )
        for key in METRICS_SHOWN:
            if key in m:
                label = "trades (closed)" if key == "trades" else key
                self.stdout.write(f"  {label:<16} {format_metric(key, m[key])}")
        base = m.get("buy_and_hold") or {}
        if base:
            self.stdout.write(
                f"  baseline (buy & hold): total_return {base['total_return']:.4f}"
                f"  max_drawdown {base['max_drawdown']:.4f}"
            )
        if "search" in m:
            self.stdout.write(
                f"  best params      {m['search']['best_params']} "
                f"({len(m['search']['trials'])} trials as django-q tasks)"
            )
            self._print_selection(m["search"].get("selection") or {})
            self._print_trials(m["search"])
        self._print_montecarlo(m.get("montecarlo") or {})
        self._print_context(run)
        if m.get("engine") == "vectorised":
            from backtesting.vectorised_run import ENGINE_NOTE

            self.stdout.write(f"  engine           {ENGINE_NOTE}")
        else:
            self.stdout.write(f"report: {run.report_path}")

    def _print_trials(self, search: dict) -> None:
        """Print the sweep's trials as a table, best first (the first TRIALS_SHOWN)."""
        trials = list(search.get("trials") or [])
        if not trials:
            return
        names = list(search.get("best_params") or {})
        reverse = bool(search.get("maximize", True))
        ranked = sorted(trials, key=lambda t: _sort_key(t.get("score"), reverse))
        columns = [*names, "score", *TRIAL_METRICS]
        widths = [max(len(c), 10) for c in columns]
        self.stdout.write(
            f"  trials ({len(trials)}, by {search.get('objective', 'score')}, best first)"
        )
        self.stdout.write(_row(columns, widths))
        for trial in ranked[:TRIALS_SHOWN]:
            self.stdout.write(_row([_cell(trial.get(c)) for c in columns], widths))
        if len(ranked) > TRIALS_SHOWN:
            self.stdout.write(f"    ... {len(ranked) - TRIALS_SHOWN} more (--json has them all)")

    def _print_montecarlo(self, montecarlo: dict) -> None:
        """Print each Monte Carlo method's final-equity and drawdown percentiles."""
        for method, summary in montecarlo.items():
            for figure in ("final_equity", "max_drawdown"):
                cells = [
                    f"p{key.rsplit('_p', 1)[1]} {_cell(value)}"
                    for key, value in summary.items()
                    if key.startswith(figure + "_p")
                ]
                if cells:
                    label = f"MC {method}"[:16]
                    self.stdout.write(f"  {label:<16} {figure}: {'  '.join(cells)}")

    def _print_selection(self, selection: dict) -> None:
        """Print how likely the sweep's pick is overfit, or why that could not be judged."""
        if "pbo" not in selection:
            reason = selection.get("unavailable", "not computed")
            self.stdout.write(f"  overfitting      unavailable: {reason}")
            return
        self.stdout.write(
            f"  PBO (CSCV)       {selection['pbo']:.4f} over {selection['trials']} trials, "
            f"{selection['blocks']} blocks of {selection['periods']} returns"
        )
        if selection.get("pbo_walk_forward") is not None:
            self.stdout.write(
                f"  PBO walk-forward {selection['pbo_walk_forward']:.4f} (best so far, judged on "
                "the next block)"
            )
        dsr = selection["deflated_sharpe"]  # None: the winner's returns never varied
        shown = "n/a (the winner's returns never varied)" if dsr is None else f"{dsr:.4f}"
        self.stdout.write(f"  deflated Sharpe  {shown} (the winner's)")

    def _print_context(self, run: BacktestRun) -> None:
        """Print the trade counts, the calendar and the risk checks the figures rest on."""
        stored = run.trades.count()
        still_open = run.trades.filter(exit_ts__isnull=True).count()
        self.stdout.write(f"  round trips      {stored} (closed and open; {still_open} open)")
        calendar = run.metrics.get("calendar") or {}
        if calendar:
            self.stdout.write(
                f"  a year is        {calendar['periods_per_year']:,.6g} bars "
                f"({calendar['name']}; {calendar['years']:.4g} years elapsed)"
            )
        risk = run.risk or {}
        source = risk.get("source", "off")
        limits = len(risk.get("limits") or [])
        self.stdout.write(
            f"  risk checks      {source}"
            + (f" ({limits} limits, {risk.get('leverage', '1')}x)" if limits else "")
        )

    def _replay(self, name: str, start: datetime, end: datetime, options) -> None:
        from backtesting.replay import ReplayError, default_report_path, replay_account

        account = Account.objects.filter(name=name).first()
        if account is None:
            raise CommandError(f"no account {name!r}")
        try:
            report = replay_account(account=account, start=start, end=end)
        except ReplayError as exc:
            raise CommandError(str(exc)) from exc
        path = report.write(
            default_report_path(account)
            if not options["report"]
            else __import__("pathlib").Path(options["report"])
        )
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
            return
        self.stdout.write(
            f"replayed {report.events} recorded events of {name!r}: live orders "
            f"{report.live_orders}, replay orders {report.replay_orders}; live fills "
            f"{report.live_fills}, replay fills {report.replay_fills}"
        )
        self.stdout.write(
            "ZERO DRIFT"
            if report.zero_drift
            else f"DRIFT: {len(report.drifts)} differences (see {path})"
        )
        for drift in report.drifts[:20]:
            self.stdout.write(
                f"  #{drift.index} {drift.kind} {drift.field}: live={drift.live} "
                f"replay={drift.replay}"
            )
