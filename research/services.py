"""Writes for research: create a run, execute its study, store findings and the report."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from django.db import transaction
from django.utils import timezone

from backtesting.engine.optimize import grid
from backtesting.engine.runner import run_backtest
from backtesting.models import BacktestRun
from backtesting.report_paths import report_path_in_reports_dir
from backtesting.services import (
    CONSTRAINTS,
    BacktestInputError,
    Costs,
    backtest_execute,
    backtest_run_create,
    bars_for,
    parse_space,
    sweep_check,
)
from marketdata.backfill import SimulatedPages
from marketdata.data_source import DATA_SOURCES
from marketdata.engine.errors import SimulationConfigError
from marketdata.engine.events import Timeframe
from marketdata.engine.planting import parse_plants
from marketdata.engine.simulator import SimulatedMarket
from marketdata.services import symbols_ensure
from marketdata.storage import MarketDataStore
from research import selectors
from research.choices import STUDY_KINDS, RunStatus
from research.engine import studies
from research.engine.errors import ResearchInputError
from research.engine.findings import FindingData, StudyOutput, finite
from research.engine.hypothesis import CORRECTIONS
from research.engine.patterns import OVERLAP_METHODS
from research.engine.report import write_report
from research.models import Finding, ResearchRun
from rrr_site import run_owner
from trading.engine.strategies import create_strategy

logger = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (stage, done, total)

MIN_SYMBOLS = {"pairs": 2, "microstructure": 1, "patterns": 1, "overfitting": 1}
MAX_OVERFITTING_TRIALS = 200  # every trial is a full backtest


class RunNotPending(ResearchInputError):
    """The run was already claimed by another worker."""


def _check_common(study: str, symbols: Sequence[str], timeframe: str, start, end) -> None:
    if study not in STUDY_KINDS:
        raise ResearchInputError(f"unknown study {study!r}; use {', '.join(STUDY_KINDS)}")
    if len(set(symbols)) != len(symbols) or len(symbols) < MIN_SYMBOLS[study]:
        raise ResearchInputError(
            f"{study} needs at least {MIN_SYMBOLS[study]} distinct symbol(s), got {list(symbols)}"
        )
    if timeframe not in {t.value for t in Timeframe}:
        raise ResearchInputError(f"unknown timeframe {timeframe!r}")
    if end <= start:
        raise ResearchInputError("end must be after start")


def _check_params(study: str, params: Mapping[str, Any]) -> None:
    if params.get("source", "database") not in DATA_SOURCES:
        raise ResearchInputError(f"source must be one of {', '.join(DATA_SOURCES)}")
    if params.get("plant_pairs"):
        _planted_pairs(params)
    alpha = float(params.get("alpha", 0.01))
    if not 0 < alpha < 1:
        raise ResearchInputError("alpha must be in (0, 1)")
    if params.get("correction", "bh") not in CORRECTIONS:
        raise ResearchInputError(f"correction must be one of {', '.join(CORRECTIONS)}")
    if study == "pairs" and not 0 <= float(params.get("holdout", 0.3)) < 1:
        raise ResearchInputError("holdout must be in [0, 1)")
    if study == "patterns":
        _check_patterns(params)
    if study == "microstructure":
        _check_microstructure(params)
    if study == "overfitting":
        _overfitting_grid(params)


def _check_patterns(params: Mapping[str, Any]) -> None:
    if params.get("overlap", "thin") not in OVERLAP_METHODS:
        raise ResearchInputError(f"overlap must be one of {', '.join(OVERLAP_METHODS)}")
    horizons = params.get("horizons", [1, 5, 20])
    if not horizons or any(int(h) < 1 for h in horizons):
        raise ResearchInputError("horizons must be positive bar counts")


def _check_microstructure(params: Mapping[str, Any]) -> None:
    try:
        pd.tseries.frequencies.to_offset(params.get("interval", "1min"))
    except ValueError as exc:
        raise ResearchInputError(f"interval: {exc}") from None
    if not 1 <= int(params.get("levels", 5)) <= 100:
        raise ResearchInputError("levels must be in 1..100 book levels")


def _overfitting_grid(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    strategy = params.get("strategy", "")
    try:
        space = parse_space(strategy, params.get("space", []))
        sweep_check(strategy=strategy, method="grid", space=space, n_iter=0, objective="sharpe")
    except BacktestInputError as exc:
        raise ResearchInputError(str(exc)) from None
    combos = grid(space, CONSTRAINTS.get(strategy))
    if not 2 <= len(combos) <= MAX_OVERFITTING_TRIALS:
        raise ResearchInputError(
            f"overfitting needs 2..{MAX_OVERFITTING_TRIALS} parameter sets, the space has "
            f"{len(combos)}"
        )
    blocks = int(params.get("blocks", 16))
    if blocks < 2 or blocks % 2:
        raise ResearchInputError("blocks must be an even number >= 2")
    return combos


def _planted_pairs(params: Mapping[str, Any]) -> tuple:
    """Return the run's planted pairs; refuse them off the simulated market or unplantable."""
    if params.get("source") != "sim":
        raise ResearchInputError("plant_pairs plant structure in the simulated market: source sim")
    try:
        pairs, _ = parse_plants(params["plant_pairs"])
        SimulatedMarket(cointegrated=pairs)  # every default symbol, as the stored bars use
    except SimulationConfigError as exc:
        raise ResearchInputError(f"plant_pairs: {exc}") from None
    return pairs


def _store_planted(run: ResearchRun, params: Mapping[str, Any]) -> None:
    """Store the planted simulated market's bars of the run (marked simulated), then read them.

    As ``backfill --source sim --plant-pair``: the simulated bars of the range are replaced by
    the planted market's (never a venue's bars: simulated rows have their own key).
    """
    pairs = _planted_pairs(params)
    store = MarketDataStore()
    symbols_ensure(list(run.symbols))
    for symbol in run.symbols:
        pages = SimulatedPages(symbol, run.timeframe, cointegrated=pairs)
        for page in pages.pages(run.start, run.end):
            store.write(page)


def study_params(
    study: str,
    *,
    source: str = "database",
    plant_pairs: Sequence[str] = (),
    alpha: float = 0.01,
    correction: str = "bh",
    holdout: float = 0.3,
    entry: float = 2.0,
    exit: float = 0.5,
    horizons: Sequence[int] = (1, 5, 20),
    candles: bool = True,
    overlap: str = "thin",
    interval: str = "1min",
    levels: int = 5,
    permutations: int = 200,
    strategy: str | None = None,
    space: Sequence[str] = (),
    blocks: int = 16,
    seed: int = 0,
) -> dict[str, Any]:
    """Return a study's stored parameters from the options a user gives (command or API)."""
    if study == "microstructure":
        if plant_pairs:
            raise ResearchInputError(
                "microstructure reads stored trades, quotes and books: plant structure with "
                "ingest --source sim --plant-impact/--plant-pair, then study them"
            )
        return {"interval": interval, "levels": levels, "permutations": permutations, "seed": seed}
    where = {"source": source, **({"plant_pairs": list(plant_pairs)} if plant_pairs else {})}
    tests = {"alpha": alpha, "correction": correction}
    if study == "pairs":
        form = {"entry": entry, "exit": exit}
        return {**tests, "holdout": holdout, "strategy": form, **where}
    if study == "patterns":
        shape = {"horizons": list(horizons), "candles": candles, "overlap": overlap}
        return {**tests, **shape, "seed": seed, **where}
    if not strategy:
        raise ResearchInputError("overfitting needs --strategy (and --space NAME=LO:HI[:STEP])")
    return {"strategy": strategy, "space": list(space), "blocks": blocks, "seed": seed, **where}


def research_run_create(
    *,
    study: str,
    symbols: Sequence[str],
    timeframe: str,
    start: datetime,
    end: datetime,
    params: Mapping[str, Any] | None = None,
    title: str = "",
) -> ResearchRun:
    """Validate a study's inputs, then record it as a pending run."""
    params = dict(params or {})
    _check_common(study, symbols, timeframe, start, end)
    try:
        _check_params(study, params)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ResearchInputError):
            raise
        raise ResearchInputError(f"bad parameter: {exc}") from None
    return ResearchRun.objects.create(
        kind=STUDY_KINDS[study],
        title=title or f"{study} {','.join(symbols)} {timeframe}",
        params=finite({**params, "study": study}),
        symbols=list(symbols),
        timeframe=timeframe,
        start=start,
        end=end,
    )


RUN_LOCK = run_owner.RESEARCH  # its executor holds ``research-run:<id>`` (rrr_site.run_owner)


def research_runs_reap() -> list[int]:
    """Fail every running study whose owner died (its lock is free); return their ids."""
    return run_owner.runs_reap(ResearchRun.objects.all(), RUN_LOCK)


def _claim(run: ResearchRun) -> None:
    claimed = ResearchRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING
    )
    if not claimed:
        raise RunNotPending(f"research run #{run.pk} is not pending")
    run.refresh_from_db()


def research_run_execute(
    *, run: ResearchRun, report: bool = True, progress: Progress | None = None
) -> ResearchRun:
    """Run a pending study; store its findings, summary and HTML report, or mark it failed.

    ``progress(stage, done, total)`` follows it: "study" (the overfitting study's backtests as
    "trials", one by one), "report", "store" (a progress bar's feed).
    """
    step = progress or _no_progress
    research_runs_reap()  # studies a killed process left "running" are failed, not run for ever
    lock = run_owner.run_lock(RUN_LOCK, run.pk)  # held from before the claim to the outcome
    if not lock.acquire():
        raise RunNotPending(
            f"research run #{run.pk} is being run by {lock.holder() or 'another process'}"
        )
    try:
        return _execute_owned(run, report, step)
    finally:
        lock.release()


def _execute_owned(run: ResearchRun, report: bool, step: Progress) -> ResearchRun:
    _claim(run)
    try:
        step("study", 0, 1)
        output = _study(run, step)
        path = None
        if report:
            step("report", 0, 1)
            path = report_path_in_reports_dir("research-", f"run-{run.pk}", ".html")
            write_report(output, path, title=run.title)
        step("store", 0, 1)
        _store(run, output, path)
        step("store", 1, 1)
    except BaseException as exc:  # Ctrl-C or a strategy's sys.exit() too: never left running
        ResearchRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
        )
        raise
    run.refresh_from_db()
    return run


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def _study(run: ResearchRun, step: Progress = _no_progress) -> StudyOutput:
    p = dict(run.params)
    window = {"start": run.start, "end": run.end, "source": p.pop("source", "database")}
    if p.get("plant_pairs"):
        _store_planted(run, {**p, "source": window["source"]})
    p.pop("plant_pairs", None)
    study = p.pop("study")
    if study == "pairs":
        closes = selectors.closes_frame(symbols=run.symbols, timeframe=run.timeframe, **window)
        return studies.pairs_study(closes, **p)
    if study == "patterns":
        bars = {
            s: selectors.bars_frame_for(symbol=s, timeframe=run.timeframe, **window)
            for s in run.symbols
        }
        return studies.patterns_study(bars, **p)
    if study == "microstructure":
        return _microstructure(run, p)
    return studies.overfitting_study(
        _trial_returns(run, p, window["source"], step),
        blocks=int(p.get("blocks", 16)),
        seed=int(p.get("seed", 0)),
    )


def _microstructure(run: ResearchRun, params: dict[str, Any]) -> StudyOutput:
    merged = StudyOutput()
    levels = int(params.pop("levels", 5))
    for symbol in run.symbols:
        trades = selectors.trades_frame(symbol=symbol, start=run.start, end=run.end)
        if len(trades) < 10:
            raise ResearchInputError(f"{symbol}: only {len(trades)} stored trades in the range")
        quotes = selectors.quotes_frame(symbol=symbol, start=run.start, end=run.end)
        book = selectors.books_frame(symbol=symbol, start=run.start, end=run.end, levels=levels)
        one = studies.microstructure_study(
            symbol,
            trades,
            quotes if len(quotes) else None,
            book=book if len(book) else None,
            **params,
        )
        merged.findings += one.findings
        merged.figures += one.figures
        merged.summary[symbol] = one.summary
    return merged


def _trial_returns(
    run: ResearchRun, params: Mapping[str, Any], source: str, step: Progress = _no_progress
) -> pd.DataFrame:
    """Backtest every parameter set of the grid; return their per-bar returns side by side."""
    strategy = params["strategy"]
    bars, _ = bars_for(
        symbols=run.symbols, timeframe=run.timeframe, start=run.start, end=run.end, source=source
    )
    config = Costs().config(run.timeframe)
    columns = {}
    combos = _overfitting_grid(params)
    step("trials", 0, len(combos))
    for done, combo in enumerate(combos, 1):
        result = run_backtest(create_strategy(strategy, **combo), bars, config)
        label = ",".join(f"{k}={v}" for k, v in sorted(combo.items()))
        columns[label] = result.returns()
        step("trials", done, len(combos))
    return pd.DataFrame(columns).fillna(0.0)


@transaction.atomic
def _store(run: ResearchRun, output: StudyOutput, path) -> None:
    Finding.objects.bulk_create([_finding_row(run, f) for f in output.findings])
    summary = {**output.summary, "findings": len(output.findings)}
    if path is not None:
        summary["report"] = str(path)
    ResearchRun.objects.filter(pk=run.pk).update(
        status=RunStatus.COMPLETED, summary=finite(summary), finished_at=timezone.now()
    )


def _finding_row(run: ResearchRun, f: FindingData) -> Finding:
    return Finding(
        run=run,
        title=f.title[:200],
        description=f.description,
        statistic=finite(f.statistic),
        p_value=finite(f.p_value),
        effect_size=finite(f.effect_size),
        significant=bool(f.significant),
        details=finite(f.details),
    )


def research_run_enqueue(*, run: ResearchRun) -> str:
    """Queue a pending run for a django-q2 worker; return the task id."""
    from django_q.tasks import async_task

    return async_task("research.tasks.research_task", run.pk, task_name=f"research-{run.pk}")


def finding_backtest_check(
    *, finding: Finding, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """Return the backtest window of a finding's strategy, or raise ResearchInputError."""
    if not (finding.details or {}).get("strategy"):
        raise ResearchInputError(f"finding #{finding.pk} has no strategy to backtest")
    start = start or finding.run.start
    end = end or finding.run.end
    if start is None or end is None or end <= start:
        raise ResearchInputError("the backtest needs start < end")
    return start, end


def finding_backtest_enqueue(
    *, finding: Finding, start: datetime | None = None, end: datetime | None = None
) -> str:
    """Queue the backtest of a finding's strategy (default: its study's period); task id."""
    from django_q.tasks import async_task

    start, end = finding_backtest_check(finding=finding, start=start, end=end)
    return async_task(
        "research.tasks.finding_backtest_task",
        finding.pk,
        start.isoformat(),
        end.isoformat(),
        task_name=f"finding-backtest-{finding.pk}",
    )


def finding_backtest(
    *, finding: Finding, start: datetime, end: datetime, costs: Costs | None = None
) -> BacktestRun:
    """Backtest the strategy a finding proposes (e.g. a cointegrated pair) and return the run."""
    form = (finding.details or {}).get("strategy")
    if not form:
        raise ResearchInputError(f"finding #{finding.pk} has no strategy to backtest")
    try:
        run = backtest_run_create(
            strategy=form["strategy"],
            params=form["params"],
            symbols=form["symbols"],
            timeframe=finding.run.timeframe,
            start=start,
            end=end,
            costs=costs or Costs(),
            name=f"finding #{finding.pk}: {finding.title}"[:100],
            data_source=(finding.run.params or {}).get("source", "database"),
        )
    except BacktestInputError as exc:
        raise ResearchInputError(str(exc)) from None
    backtest_execute(run=run)
    run.refresh_from_db()
    return run
