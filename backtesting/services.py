"""Writes for backtesting: run a backtest or a parameter sweep and record it as BacktestRuns.

A sweep is a parent ``BacktestRun`` whose children are one parameter set each; every child is its
own django-q2 task in the parent's group, so a sweep spreads over every ``qcluster`` worker on
the broker. The parent collects the children's metrics, picks the best set by the objective and
runs it in full (trades, report).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from backtesting.choices import RunStatus
from backtesting.engine.errors import BacktestConfigError
from backtesting.engine.fills import FixedBps, NoSlippage
from backtesting.engine.metrics import summarize
from backtesting.engine.montecarlo import block_bootstrap, shuffle_trades
from backtesting.engine.optimize import (
    Choice,
    FloatRange,
    IntRange,
    SearchResult,
    grid,
    grid_size,
    objective_maximized,
    search,
    sweep_selection,
    walk_forward,
)
from backtesting.engine.result import BacktestResult
from backtesting.engine.runner import BacktestConfig, BacktestRunner
from backtesting.models import BacktestRun, BacktestTrade
from backtesting.report_paths import report_path_in_reports_dir
from backtesting.risk_limits import risk_hook, snapshot_margin
from backtesting.storage import trades_store
from marketdata.services import MarketDataUnavailable, bars_load
from monitoring.realtime import publish
from risk.engine.enforcer import stop_rules
from rrr_site.locks import OwnerLock
from trading.engine.errors import StrategyConfigError
from trading.engine.strategies import create_strategy, strategy_class

logger = logging.getLogger(__name__)
EQUITY_POINTS = 2_000  # stored equity curve is thinned to this many points
CHILD_POLL_SECONDS = 0.5
# A distributed sweep enqueues its unfinished trials again this often once the broker is empty
# (trials of a killed qcluster are lost from Redis); copies of a trial run it once, by its lock.
REDISPATCH_SECONDS = 30.0

# Default search spaces per built-in strategy (overridable with --space name=lo:hi:step).
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "sma_cross": {"fast": IntRange(5, 30, 5), "slow": IntRange(20, 100, 10)},
    "rsi_reversion": {
        "period": IntRange(7, 21, 7),
        "lower": IntRange(20, 35, 5),
        "upper": IntRange(65, 80, 5),
    },
    "bollinger_breakout": {
        "period": IntRange(10, 40, 10),
        "k": FloatRange.stepped(1.5, 3.0, 0.5),
    },
}
CONSTRAINTS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "sma_cross": lambda p: p["fast"] < p["slow"],
    "rsi_reversion": lambda p: p["lower"] < p["upper"],
}


MAX_SWEEP_TRIALS = 10_000  # each trial is a BacktestRun row and a task


class BacktestInputError(ValueError):
    """A backtest request that cannot run (unknown strategy, empty data, bad space)."""


class RunNotPending(BacktestInputError):
    """The run was claimed already (another worker runs it, or it finished)."""


class SweepOwned(RunNotPending):
    """Another live process works this sweep: it holds the sweep's owner lock."""


class BacktestCancelled(Exception):
    """The run was cancelled (``backtesting.run_control.backtest_cancel``) while it ran."""


class SweepFailed(RuntimeError):
    """A parameter sweep stopped: a trial failed or did not finish in time."""


@dataclass(frozen=True, slots=True)
class Costs:
    """Fill model and costs of a run."""

    fill_model: str = "next_open"
    fees_bps: Decimal = Decimal("10")
    slippage_bps: Decimal = Decimal("0")
    initial_capital: Decimal = Decimal("100000")
    periods_per_year: float | None = None  # None: the bars' calendar
    risk: Mapping[str, Any] = field(default_factory=dict)  # ``risk_limits`` snapshot; {}: none
    # runtrader's stop options: stop_loss, trailing_stop, atr_stop, max_hold; {}: no stops
    stops: Mapping[str, Any] = field(default_factory=dict)

    def config(self, timeframe: str) -> BacktestConfig:
        """Return the engine configuration."""
        slippage = FixedBps(float(self.slippage_bps)) if self.slippage_bps else NoSlippage()
        leverage, policy = snapshot_margin(dict(self.risk))
        stops = self.stops or {}
        rules = stop_rules(
            stop_loss=_decimal_or_none(stops.get("stop_loss")),
            trailing=_decimal_or_none(stops.get("trailing_stop")),
            atr_multiple=_decimal_or_none(stops.get("atr_stop")),
            max_hold=stops.get("max_hold"),
        )
        return BacktestConfig(
            initial_cash=self.initial_capital,
            fill_model=self.fill_model,
            taker_fee_bps=self.fees_bps,
            maker_fee_bps=self.fees_bps,
            slippage=slippage,
            timeframe=timeframe,
            periods_per_year=self.periods_per_year,
            leverage=leverage,
            buying_power=policy,
            stop_rules=tuple(rules),
        )


def _decimal_or_none(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def parse_space(strategy: str, overrides: Sequence[str]) -> dict[str, Any]:
    """Return the search space: the strategy's defaults with ``--space`` overrides.

    An override is ``name=low:high[:step]`` (integers, or floats when any part has a dot or an
    exponent) or ``name=a,b,c`` (a choice). Every name must be a parameter of the strategy.
    """
    space = dict(DEFAULT_SPACES.get(strategy) or _declared_space(strategy))
    for item in overrides:
        name, dimension = _parse_dimension(item)
        space[name] = dimension
    if not space:
        raise BacktestInputError(f"no search space for {strategy!r}: give --space name=lo:hi:step")
    unknown = sorted(set(space) - set(strategy_parameters(strategy)))
    if unknown:
        known = ", ".join(sorted(strategy_parameters(strategy)))
        raise BacktestInputError(
            f"--space: {strategy} has no parameter {', '.join(unknown)} (it takes {known})"
        )
    return space


def _declared_space(strategy: str) -> dict[str, Any]:
    """Return the ranges of the strategy's typed parameters (``trading.engine.params``)."""
    from trading.engine.params import search_space

    try:
        return search_space(strategy_class(strategy).parameters)
    except StrategyConfigError as exc:
        raise BacktestInputError(str(exc)) from exc


def strategy_parameters(strategy: str) -> Mapping[str, Any]:
    """Return the parameters ``strategy`` accepts, with their defaults."""
    try:
        return strategy_class(strategy).default_params
    except StrategyConfigError as exc:
        raise BacktestInputError(str(exc)) from exc


def _parse_dimension(item: str) -> tuple[str, Any]:
    name, sep, spec = item.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        raise BacktestInputError(f"--space expects name=low:high[:step] or name=a,b,c: {item!r}")
    try:
        if "," in spec:
            return name, Choice(tuple(_scalar(v.strip()) for v in spec.split(",") if v.strip()))
        bounds = [_scalar(p.strip()) for p in spec.split(":")]
        if len(bounds) not in (2, 3) or any(isinstance(b, str) for b in bounds):
            raise ValueError("expected numbers low:high[:step]")
        if all(isinstance(b, int) for b in bounds):
            low, high, *step = bounds
            return name, IntRange(low, high, step[0] if step else 1)
        low, high, *step = (float(b) for b in bounds)
        return name, FloatRange.stepped(low, high, step[0]) if step else FloatRange(low, high)
    except (ValueError, BacktestConfigError) as exc:
        raise BacktestInputError(f"--space {item!r}: {exc}") from exc


def _scalar(text: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def sweep_check(
    *, strategy: str, method: str, space: Mapping[str, Any], n_iter: int, objective: str
) -> None:
    """Refuse a sweep that cannot run, before any row is written.

    A grid's every combination is built once here, so a set the strategy refuses is reported
    now rather than as a failed trial; random and genetic draws are checked as they are made.
    """
    if objective not in metric_names():
        raise BacktestInputError(
            f"--objective must be a metric name, one of {', '.join(sorted(metric_names()))}"
        )
    try:
        objective_maximized(objective)  # turnover, trades, ... rank nothing
    except BacktestConfigError as exc:
        raise BacktestInputError(f"--objective: {exc}") from None
    if method == "grid":
        size = grid_size(space)
        if size > MAX_SWEEP_TRIALS:
            raise BacktestInputError(
                f"the grid has {size} combinations; at most {MAX_SWEEP_TRIALS} (narrow --space)"
            )
        combos = grid(space, CONSTRAINTS.get(strategy))
        if not combos:
            raise BacktestInputError("no parameter combination of --space is allowed")
        for params in combos:
            strategy_check(strategy, params)
    elif method == "random" and not 1 <= n_iter <= MAX_SWEEP_TRIALS:
        raise BacktestInputError(f"--trials must be between 1 and {MAX_SWEEP_TRIALS}")


@cache
def metric_names() -> frozenset[str]:
    """Return the names ``--objective`` may use (what every run reports)."""
    with np.errstate(all="ignore"):
        flat = summarize(np.ones(3), initial=1.0, periods_per_year=1.0)
    return frozenset(flat)


def strategy_check(strategy: str, params: Mapping[str, Any]) -> None:
    """Refuse parameters the strategy does not accept (one clear BacktestInputError)."""
    try:
        create_strategy(strategy, **params)
    except Exception as exc:
        raise BacktestInputError(f"strategy {strategy!r} with {dict(params)}: {exc}") from exc


def bars_for(
    *,
    symbols: Sequence[str],
    timeframe: str,
    start: datetime,
    end: datetime,
    source: str = "database",
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Return the long bars frame (ts, symbol, OHLCV) and each symbol's data origin.

    ``source="database"``: stored venue bars only (none for a symbol is a ``BacktestInputError``
    saying how to backfill them); ``"sim"``: the simulated market's, stored marked simulated.
    """
    frames, origins = [], {}
    for symbol in symbols:
        try:
            bars, origin = bars_load(
                symbol=symbol, timeframe=timeframe, start=start, end=end, source=source
            )
        except MarketDataUnavailable as exc:
            raise BacktestInputError(str(exc)) from None
        origins[symbol] = origin
        frame = bars.reset_index()  # ts, OHLCV, vwap, trade_count (models use them)
        frame.insert(1, "symbol", symbol)
        frames.append(frame)
    if len(frames) == 1 and frames[0]["ts"].is_monotonic_increasing:
        long = frames[0]  # one symbol's bars come ordered by ts: nothing to merge or sort
    else:
        long = pd.concat(frames, ignore_index=True).sort_values(["ts", "symbol"], kind="stable")
    if long.empty:
        raise BacktestInputError("no bars for the requested symbols and range")
    return long, origins


# ---------------------------------------------------------------------------------- runs


@transaction.atomic
def backtest_run_create(
    *,
    strategy: str,
    params: Mapping[str, Any],
    symbols: Sequence[str],
    timeframe: str,
    start: datetime,
    end: datetime,
    costs: Costs,
    optimize: str = "",
    parent: BacktestRun | None = None,
    name: str = "",
    data_source: str = "database",
    owner: Any = None,
) -> BacktestRun:
    """Record a pending run (validates the strategy and its parameters first).

    ``owner``: the user who asked for it (a sweep's trials inherit the parent's).
    """
    try:
        create_strategy(strategy, **params)
    except Exception as exc:  # any refusal of the parameters is the caller's input error
        raise BacktestInputError(f"strategy {strategy!r}: {exc}") from exc
    if end <= start:
        raise BacktestInputError("end must be after start")
    return BacktestRun.objects.create(
        name=name,
        parent=parent,
        owner=owner if owner is not None else (parent.owner if parent is not None else None),
        strategy=strategy,
        params=_jsonable(params),
        symbols=list(symbols),
        timeframe=timeframe,
        start=start,
        end=end,
        fill_model=costs.fill_model,
        fees_bps=costs.fees_bps,
        slippage_bps=costs.slippage_bps,
        initial_capital=costs.initial_capital,
        periods_per_year=costs.periods_per_year,
        risk=dict(costs.risk),
        stops=_jsonable(dict(costs.stops)),
        data_source=data_source,
        optimize=optimize,
        task_group=f"backtest-{uuid.uuid4().hex[:12]}" if optimize else "",
    )


def _costs_of(run: BacktestRun) -> Costs:
    return Costs(
        run.fill_model,
        run.fees_bps,
        run.slippage_bps,
        run.initial_capital,
        run.periods_per_year,
        run.risk or {},
        run.stops or {},
    )


def _claim(run: BacktestRun) -> None:
    """Move a pending run to running (never runs twice)."""
    claimed = BacktestRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        raise RunNotPending(f"backtest #{run.pk} is not pending")
    run.refresh_from_db()


def run_owned_claim(run: BacktestRun) -> OwnerLock:
    """Take the run's ownership lock, then claim it; return the lock (released by the caller).

    The lock is held before the run shows ``running``, so a running run with a free lock has
    lost its owner (``backtesting.run_owner.backtest_runs_reap`` fails it).
    """
    from backtesting.run_owner import run_lock

    lock = run_lock(run.pk)
    if not lock.acquire():
        raise RunNotPending(
            f"backtest #{run.pk} is being run by {lock.holder() or 'another process'}"
        )
    try:
        _claim(run)
    except BaseException:
        lock.release()
        raise
    return lock


def backtest_execute(
    *,
    run: BacktestRun,
    progress: Callable[[float], None] | None = None,
    report: str | Path | None = None,
    montecarlo: int = 0,
    bars: pd.DataFrame | None = None,
    claim: bool = True,
    phases: dict[str, float] | None = None,
    cpu_phases: dict[str, float] | None = None,
) -> BacktestResult:
    """Run one backtest and store trades, metrics, equity curve and the report.

    ``claim=False`` is for a caller that claimed the run itself (a sweep's parent). ``phases``,
    when given, receives the seconds spent loading, running, in Monte Carlo, writing the report
    and storing (``backtest --profile``); ``cpu_phases`` the CPU seconds of the same phases.
    """
    clock = _PhaseClock(phases, cpu_phases)
    lock = run_owned_claim(run) if claim else None
    try:
        if bars is None:
            bars, origins = bars_for(
                symbols=run.symbols,
                timeframe=run.timeframe,
                start=run.start,
                end=run.end,
                source=run.data_source,
            )
        else:
            origins = {s: "given" for s in run.symbols}
        clock.lap("load")
        result = _run_engine(run, bars, progress)
        clock.lap("run")
        mc = _montecarlo(result, float(run.initial_capital), montecarlo) if montecarlo else []
        clock.lap("montecarlo")
        path = _report_path(run, report)
        from backtesting.engine.report import write_report  # plotly: loaded to write, not to start

        write_report(result, path, title=f"{run.strategy} {','.join(run.symbols)}", montecarlo=mc)
        clock.lap("report")
        extra = {
            "data": origins,
            "montecarlo": {m.method: m.summary() for m in mc},
            "calendar": _calendar_of(result),
        }
        _store_result(run, result, path, extra)
        clock.lap("store")
        return result
    except BaseException as exc:  # Ctrl-C or a strategy's sys.exit() too: never left running
        run_fail(run, exc)  # a run cancelled meanwhile stays cancelled
        raise
    finally:
        if lock is not None:
            lock.release()


class _PhaseClock:
    """Add the wall (and CPU) seconds since the previous lap to ``phases[name]`` (and
    ``cpu[name]``); nothing when ``phases`` is None."""

    __slots__ = ("cpu", "last", "last_cpu", "phases")

    def __init__(
        self, phases: dict[str, float] | None, cpu: dict[str, float] | None = None
    ) -> None:
        self.phases = phases
        self.cpu = cpu
        self.last = time.perf_counter()
        self.last_cpu = time.process_time()

    def lap(self, name: str) -> None:
        if self.phases is None:
            return
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self.last
        self.last = now
        if self.cpu is not None:
            now_cpu = time.process_time()
            self.cpu[name] = self.cpu.get(name, 0.0) + now_cpu - self.last_cpu
            self.last_cpu = now_cpu


def _calendar_of(result: BacktestResult) -> dict[str, Any]:
    """Return what the figures were annualised with (for the run's record and the output)."""
    calendar = result.calendar
    if calendar is None:
        return {}
    return {
        "name": calendar.name,
        "periods_per_year": calendar.periods_per_year,
        "years": result.years,
    }


def _progress_store(run_id: int, fraction: float) -> bool:
    """Record a running run's progress; return False when it is no longer running.

    A progress mark is advisory (the final result commits durably with the trades), so on
    PostgreSQL its own transaction does not wait for the WAL flush: a hundred marks per run
    cost a hundred disk syncs otherwise. Inside a caller's transaction it is part of that one
    and keeps its durability.
    """
    running = BacktestRun.objects.filter(pk=run_id, status=RunStatus.RUNNING)
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return bool(running.update(progress=fraction))
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        return bool(running.update(progress=fraction))


def _run_engine(
    run: BacktestRun,
    bars: pd.DataFrame,
    progress: Callable[[float], None] | None,
    marks: int = 100,
) -> BacktestResult:
    """Run ``run`` on ``bars``, storing its progress about ``marks`` times (each mark is a
    write and a check that the run was not cancelled)."""
    config = _costs_of(run).config(run.timeframe)
    runner = BacktestRunner(config, hook=risk_hook(run.risk or {}, config.account))
    runner.add(create_strategy(run.strategy, **run.params))
    every = max(1_000, len(bars) // marks)

    def report_progress(done: int, of: int) -> None:
        fraction = min(1.0, done / max(1, of))
        if not _progress_store(run.pk, fraction):  # cancelled (or failed by a stopped sweep)
            raise BacktestCancelled(f"backtest #{run.pk} was cancelled")
        progress_publish(run.pk, done, of, RunStatus.RUNNING)
        if progress is not None:
            progress(fraction)

    predictions = _model_predictions(run, bars) if run.strategy == "model_signal" else []
    return runner.run(bars, predictions=predictions, progress=report_progress, progress_every=every)


def model_signal_in_sample(
    *, symbols: Sequence[str], timeframe: str, start: datetime, end: datetime
) -> list[str]:
    """Return why a ``model_signal`` backtest of [start, end) would be in-sample: one line per
    symbol whose active model was trained on bars inside the range (empty: out of sample)."""
    from models_ml.selectors import active_model_for, model_training_range

    problems = []
    for symbol in symbols:
        model = active_model_for(symbol=symbol, timeframe=timeframe)
        span = model_training_range(model) if model is not None else None
        if span is not None and span[0] < end and start < span[1]:
            problems.append(
                f"{symbol}: {model} was trained on {span[0]:%Y-%m-%d %H:%M} .. "
                f"{span[1]:%Y-%m-%d %H:%M}, which overlaps the backtest range"
            )
    return problems


def _model_predictions(run: BacktestRun, bars: pd.DataFrame) -> list:
    """Batch-predict with each symbol's active model; stamp each call at its bar's close.

    A prediction uses its bar's data only and is delivered when that bar closes, so the strategy
    trades it at the next fill, as ``runtrader`` does: no look-ahead.
    """
    from datetime import timedelta

    from marketdata.engine.events import TIMEFRAME_SECONDS
    from models_ml.engine.inference import Predictor
    from models_ml.selectors import active_model_for, model_artifact_dir
    from trading.engine.strategy import Prediction, PredictionKind

    step = timedelta(seconds=TIMEFRAME_SECONDS[run.timeframe])
    out = []
    for symbol in run.symbols:
        model = active_model_for(symbol=symbol, timeframe=run.timeframe)
        if model is None:
            raise BacktestInputError(
                f"model_signal needs an active {run.timeframe} model for "
                f"{symbol}: train one (manage.py train) and activate it"
            )
        predictor = Predictor.load(model_artifact_dir(model), model_name=str(model))
        frame = bars[bars["symbol"] == symbol].drop(columns="symbol").set_index("ts")
        batch = predictor.predict_batch(frame, symbol)
        out += [
            Prediction(
                symbol=symbol,
                ts=ts.to_pydatetime() + step,
                kind=PredictionKind.DIRECTION,
                value=float(row.probability),
                confidence=float(row.confidence),
                model=str(model),
            )
            for ts, row in batch.iterrows()
        ]
        logger.info("backtest %s: %d predictions from %s", run.pk, len(batch), model)
    return out


def _montecarlo(result: BacktestResult, initial: float, n: int) -> list:
    trade_returns = [t.return_pct for t in result.closed_trades]
    out = []
    if len(trade_returns) >= 2:
        out.append(shuffle_trades(trade_returns, initial_equity=initial, n_simulations=n))
    returns = result.returns().to_numpy()
    if len(returns) > 40:
        out.append(block_bootstrap(returns, initial_equity=initial, n_simulations=n))
    return out


def _report_path(run: BacktestRun, report: str | Path | None) -> Path:
    if report:
        return Path(report)  # the operator's own choice on the command line
    return report_path_in_reports_dir("backtest_", str(run.pk), ".html")


def _baseline(result: BacktestResult) -> dict[str, float]:
    """Return the naive baseline beside the strategy: equal-weight buy and hold, same bars."""
    bench = result.benchmark.dropna()
    if len(bench) < 2:
        return {}
    peak = bench.cummax()
    return {
        "total_return": float(bench.iloc[-1] / bench.iloc[0] - 1),
        "max_drawdown": float((1 - bench / peak).max()),
    }


def _thin(equity: pd.Series) -> list[list]:
    step = max(1, len(equity) // EQUITY_POINTS)
    sample = equity.iloc[::step]
    if len(equity) and sample.index[-1] != equity.index[-1]:
        sample = pd.concat([sample, equity.iloc[-1:]])
    return [[ts.isoformat(), float(v)] for ts, v in sample.items()]


@transaction.atomic
def _store_result(
    run: BacktestRun, result: BacktestResult, report: Path, extra: Mapping[str, Any]
) -> None:
    BacktestTrade.objects.filter(run=run).delete()
    trades_store(run=run, trades=result.trades)  # COPY on PostgreSQL
    metrics = {
        **result.metrics,
        "final_equity": str(result.final_equity),
        "orders": len(result.orders),
        "fills": len(result.fills),
        "buy_and_hold": _baseline(result),
        **extra,
    }
    stored = BacktestRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.COMPLETED,
        progress=1.0,
        metrics=_jsonable(metrics),
        equity_curve=_thin(result.equity),
        report_path=str(report),
        finished_at=timezone.now(),
    )
    if not stored:  # cancelled at the last moment: its trades roll back with this transaction
        raise BacktestCancelled(f"backtest #{run.pk} was cancelled")
    bars = max(1, len(result.equity))
    progress_publish(run.pk, bars, bars, RunStatus.COMPLETED)  # sent once this commits


# ---------------------------------------------------------------------------------- sweeps


def _child_task(child_id: int) -> dict:
    """django-q2 task body: run one parameter set of a sweep (metrics only, no report).

    At least once, done once: the Redis broker has no acknowledgement, so the sweep enqueues a
    trial again when it may have been lost (``TaskEvaluator``). The trial's owner lock decides
    who runs it: a copy whose trial another live worker holds, or that is already finished,
    returns at once; a trial left ``running`` by a killed worker (its lock died with it) is taken
    over and run again from the start. Results are stored only by the lock's holder, once.
    """
    from rrr_site.locks import owner_lock

    lock = owner_lock(f"backtest-trial:{child_id}")
    if not lock.acquire():
        return {"run": child_id, "skipped": "another worker is running this trial"}
    try:
        return _child_run(child_id)
    finally:
        lock.release()


def _child_run(child_id: int) -> dict:
    """Claim (pending, or running under a dead owner) and run one trial while holding its lock."""
    claimed = BacktestRun.objects.filter(pk=child_id, status__in=UNFINISHED).update(
        status=RunStatus.RUNNING,
        started_at=timezone.now(),
        progress=0.0,
        metrics={"claimed_by": f"pid {os.getpid()} on {socket.gethostname()}"},
    )
    if not claimed:  # finished, failed or cancelled meanwhile: nothing to do, nothing to count
        return {"run": child_id, "skipped": "not pending"}
    child = BacktestRun.objects.select_related("parent").get(pk=child_id)
    try:
        bars, read = _trial_bars(child)
        # Nobody watches a trial's own bar count, only a stop: ten marks, not a hundred writes.
        result = _run_engine(child, bars, None, marks=TRIAL_PROGRESS_MARKS)
    except BaseException as exc:  # django-q's timeout is a SystemExit: the row must say so too
        run_fail(child, exc)
        raise
    # Conditional: a trial the sweep already gave up on (marked failed) stays failed.
    if BacktestRun.objects.filter(pk=child.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.COMPLETED,
        progress=1.0,
        metrics=_jsonable(result.metrics),
        equity_curve=_thin(result.equity),  # the sweep's PBO compares the trials' returns
        finished_at=timezone.now(),
    ):
        bars_done = max(1, len(result.equity))
        progress_publish(child.pk, bars_done, bars_done, RunStatus.COMPLETED)
    # The task's stored result says which process ran it and whether it read the bars itself.
    bars_from = "database" if read else "process cache"
    return {"run": child.pk, "metrics": _jsonable(result.metrics), "pid": os.getpid(),
            "bars": bars_from}  # fmt: skip


def _trial_bars(child: BacktestRun) -> tuple[pd.DataFrame, bool]:
    """Return a trial's bars from this process's cache of its sweep's bars (read once), and
    whether this call read them from the database."""
    from backtesting import trial_bars

    owner = child.parent or child
    key = trial_bars.bars_key(
        sweep=owner.pk,
        symbols=owner.symbols,
        timeframe=owner.timeframe,
        start=owner.start,
        end=owner.end,
        source=owner.data_source,
    )
    loads = trial_bars.CACHE.info.loads  # a worker process runs one trial at a time
    frame, _ = trial_bars.CACHE.get(
        key,
        lambda: bars_for(
            symbols=owner.symbols,
            timeframe=owner.timeframe,
            start=owner.start,
            end=owner.end,
            source=owner.data_source,
        ),
    )
    read = trial_bars.CACHE.info.loads != loads
    if (child.start, child.end) == (owner.start, owner.end):
        return frame, read
    return trial_bars.slice_range(frame, child.start, child.end), read  # a walk-forward window


UNFINISHED = (RunStatus.PENDING, RunStatus.RUNNING)
# How often a trial stores its progress and checks that its sweep still wants it.
TRIAL_PROGRESS_MARKS = 10


def run_fail(run: BacktestRun | int, reason: BaseException | str) -> bool:
    """Mark a run that is still pending or running as failed; return whether it was."""
    pk = run if isinstance(run, int) else run.pk
    error = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
    failed = bool(
        BacktestRun.objects.filter(pk=pk, status__in=UNFINISHED).update(
            status=RunStatus.FAILED, error=error[:10_000], finished_at=timezone.now()
        )
    )
    if failed:
        progress_publish_stored(pk)
    return failed


def progress_publish(run_id: int, done: int, total: int, status: str) -> None:
    """Tell the run's ``backtests.<id>`` stream subscribers how far it is (after commit).

    ``done``/``total`` count bars for a run and trials for a sweep.
    """
    publish(
        f"backtests.{run_id}",
        "progress",
        {
            "run": run_id,
            "done": done,
            "total": total,
            "fraction": min(1.0, done / max(1, total)),
            "status": str(status),
        },
    )


def progress_publish_stored(run_id: int) -> None:
    """Publish a run's stored progress and status (done as a percentage, total 100)."""
    row = BacktestRun.objects.filter(pk=run_id).values("progress", "status").first()
    if row is not None:
        progress_publish(run_id, round(row["progress"] * 100), 100, row["status"])


class TaskEvaluator:
    """A ``BatchEvaluator`` that runs each parameter set as its own django-q2 task.

    A trial that fails stops the sweep: its siblings still waiting are marked failed (a worker
    that picks one up later finds it no longer pending) and ``SweepFailed`` names the trial.
    """

    def __init__(
        self,
        parent: BacktestRun,
        *,
        timeout: float = 3600,
        distributed: bool = True,
        progress: Callable[[int, int], None] | None = None,
        window: tuple[datetime, datetime] | None = None,
        helps: bool = False,
    ) -> None:
        self.parent = parent
        # True when the parent itself runs in a qcluster worker (``backtest_task``, a takeover):
        # while it waits it runs trials still pending, so the worker slot it holds works and a
        # sweep whose parent holds a cluster's only slot still finishes.
        self.helps = helps
        # A walk-forward window's training range (its trials run on the parent's bars, sliced).
        self.window = window
        # False: each trial still runs as a django-q task (group, stored result) but inline, for
        # the embedded default where no qcluster may be running.
        self.distributed = distributed
        self.timeout = timeout
        self.progress = progress
        self.published = -1  # trials done when progress was last published
        self.children: list[BacktestRun] = []

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> list[Mapping[str, float]]:
        """Enqueue one task per parameter set in the parent's group; wait for all of them."""
        children = self._create(batch)
        self.children += children
        ids = [c.pk for c in children]
        try:
            for child in children:
                self._enqueue(child)
            return self._collect(ids)
        except BaseException as exc:
            self._abandon(ids, f"sweep stopped: {type(exc).__name__}: {exc}")
            if isinstance(exc, Exception) and not isinstance(exc, SweepFailed | BacktestCancelled):
                raise SweepFailed(self._first_failure(ids) or str(exc)) from exc
            raise

    @transaction.atomic
    def _create(self, batch: Sequence[Mapping[str, Any]]) -> list[BacktestRun]:
        """Record every trial of the batch, or none (a refused set rolls back the rest).

        A parameter set this sweep already recorded on the same range is that trial again
        (one row per sweep, parameters and range), never a second one counted twice.
        """
        parent = self.parent
        start, end = self.window or (parent.start, parent.end)
        known = {
            (repr(sorted(c.params.items())), c.start, c.end): c
            for c in BacktestRun.objects.filter(parent=parent, start=start, end=end)
        }
        trials = []
        for params in batch:
            key = (repr(sorted(_jsonable(params).items())), start, end)
            if key not in known:
                known[key] = self._create_one(dict(sorted(params.items())), start, end)
            trials.append(known[key])
        return trials

    def _create_one(self, params: dict[str, Any], start: datetime, end: datetime) -> BacktestRun:
        """Record one trial; if another process recorded it meanwhile, return that row.

        The database's ``backtest_trial_unique`` decides between two parents (a sweep and the
        worker that took it over) creating the same trial at once.
        """
        from django.db import IntegrityError

        parent = self.parent
        try:
            with transaction.atomic():  # a savepoint: the conflict leaves the batch usable
                return backtest_run_create(
                    strategy=parent.strategy,
                    params=params,
                    symbols=parent.symbols,
                    timeframe=parent.timeframe,
                    start=start,
                    end=end,
                    costs=_costs_of(parent),
                    parent=parent,
                    name=f"{parent.name or parent.strategy} trial",
                    data_source=parent.data_source,
                )
        except IntegrityError:
            known = BacktestRun.objects.filter(
                parent=parent, params=_jsonable(params), start=start, end=end
            ).first()
            if known is None:
                raise  # another constraint refused it: not a trial recorded twice
            return known

    def _enqueue(self, child: BacktestRun) -> None:
        if child.status in UNFINISHED:  # a trial a retried sweep finished already is not rerun
            self._enqueue_id(child.pk)

    def _enqueue_id(self, pk: int) -> None:
        from django_q.tasks import async_task

        # Inline (sync) tasks re-raise the trial's exception here; the trial row is failed by then.
        async_task(
            "backtesting.tasks.backtest_child_task",
            pk,
            group=self.parent.task_group,
            timeout=int(self.timeout),
            sync=not self.distributed,
        )

    def _collect(self, ids: list[int]) -> list[Mapping[str, float]]:
        """Wait for every trial of ``ids``; return their metrics in order.

        A poll reads the trials' statuses only: whole rows carry each trial's equity curve
        (2,000 points), which cost 140 ms of CPU per poll at 64 trials, more than a poll's
        interval's worth on a loaded host, taken from the workers beside it.
        """
        deadline = time.monotonic() + self.timeout
        dispatched = time.monotonic()
        while True:
            if self.distributed and time.monotonic() - dispatched > REDISPATCH_SECONDS:
                self._redispatch(ids)
                dispatched = time.monotonic()
            statuses = dict(BacktestRun.objects.filter(pk__in=ids).values_list("pk", "status"))
            failed = RunStatus.FAILED in statuses.values() and self._first_failure(ids)
            if failed:
                raise SweepFailed(failed)
            if BacktestRun.objects.filter(pk=self.parent.pk, status=RunStatus.CANCELLED).exists():
                raise BacktestCancelled(f"sweep #{self.parent.pk} was cancelled")
            done = sum(statuses.get(i) == RunStatus.COMPLETED for i in ids)
            if done != self.published:
                self.published = done
                progress_publish(self.parent.pk, done, len(ids), RunStatus.RUNNING)
            if self.progress is not None:
                self.progress(done, len(ids))
            if done == len(ids):
                metrics = dict(BacktestRun.objects.filter(pk__in=ids).values_list("pk", "metrics"))
                return [_stored_metrics(metrics[i]) for i in ids]
            if time.monotonic() > deadline:
                raise SweepFailed(f"sweep trials still unfinished after {self.timeout:.0f}s")
            if not (self.helps and self.distributed and self._run_one_pending(statuses)):
                time.sleep(CHILD_POLL_SECONDS)

    def _run_one_pending(self, statuses: Mapping[int, str]) -> bool:
        """Run here the last trial still pending; return whether there was one.

        Workers take trials from the front of the queue, so the parent takes from the back; its
        copy on the broker then does nothing (``_child_task``). A trial that fails has its row
        failed with the reason, and the next poll stops the sweep naming it.
        """
        pending = [pk for pk, status in statuses.items() if status == RunStatus.PENDING]
        if not pending:
            return False
        try:
            _child_task(max(pending))
        except Exception as exc:
            logger.warning("sweep %s: trial %s run by the parent failed: %s",
                           self.parent.pk, max(pending), exc)  # fmt: skip
        return True

    def _redispatch(self, ids: list[int]) -> int:
        """Enqueue again every unfinished trial once the broker has handed out all tasks.

        The Redis broker forgets a task once a cluster pops it, so the tasks of a ``qcluster``
        killed meanwhile (running or prefetched) are gone while their rows stay pending or
        running. A copy of a trial that a live worker still holds, or has finished, does nothing
        (``_child_task``); a lost one runs. Returns how many were enqueued again.
        """
        from django_q.brokers import get_broker

        if get_broker().queue_size():
            return 0  # tasks still wait on the broker: the workers are busy, nothing is lost yet
        unfinished = list(
            BacktestRun.objects.filter(pk__in=ids, status__in=UNFINISHED)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        for pk in unfinished:
            self._enqueue_id(pk)
        if unfinished:
            logger.info(
                "sweep %s: enqueued %d unfinished trial(s) again", self.parent.pk, len(unfinished)
            )
        return len(unfinished)

    @staticmethod
    def _first_failure(ids: list[int]) -> str:
        row = (
            BacktestRun.objects.filter(pk__in=ids, status=RunStatus.FAILED)
            .exclude(error__startswith="sweep stopped:")
            .order_by("pk")
            .first()
        )
        return f"trial #{row.pk} {row.params} failed: {row.error}" if row else ""

    @staticmethod
    def _abandon(ids: list[int], reason: str) -> None:
        """Fail the trials that have not finished: nothing of a stopped sweep stays pending."""
        BacktestRun.objects.filter(pk__in=ids, status__in=UNFINISHED).update(
            status=RunStatus.FAILED, error=reason[:10_000], finished_at=timezone.now()
        )


def _stored_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Return a trial's stored metrics with the NaNs JSON kept as null restored."""
    return {k: float("nan") if v is None else v for k, v in metrics.items()}


def sweep_execute(
    *,
    parent: BacktestRun,
    method: str,
    space: Mapping[str, Any],
    objective: str = "sharpe",
    n_iter: int = 20,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    report: str | Path | None = None,
    montecarlo: int = 0,
    distributed: bool | None = None,
    resume: bool = False,
    lock: OwnerLock | None = None,
    helps: bool = False,
) -> SearchResult:
    """Search parameters with one task per set, then run the best set in full on the parent.

    ``distributed`` (default: when a Redis broker is configured) sends every trial to the
    ``qcluster`` workers; otherwise the trials run inline as synchronous django-q tasks. If
    anything fails, the parent is marked failed with the reason before the error propagates.
    ``resume``: the parent is already running (taken over from a dead process,
    ``backtesting.sweep_takeover``); its finished trials are found, not run again.

    The sweep is worked under its owner lock (``sweep_owned``), whoever calls: ``lock`` is that
    lock when the caller holds it already (a takeover); ``SweepOwned`` when another process does.
    ``helps``: this process is a qcluster worker; it runs pending trials too while it waits.
    """
    with sweep_owned(parent, lock):
        return _sweep_run(
            parent, method, space, objective, n_iter, seed, progress, report, montecarlo,
            distributed, resume, helps,
        )  # fmt: skip


@contextlib.contextmanager
def sweep_owned(parent: BacktestRun, held: OwnerLock | None = None) -> Iterator[None]:
    """Hold the sweep's owner lock ``backtest-sweep:<id>`` from before its claim to its outcome.

    Every path that runs a sweep or walk-forward goes through here (the ``backtest`` command, a
    worker's ``backtest_task``, a takeover, a bench or a test calling the service), so a live
    sweep's lock is never free and the every-minute takeover never runs it a second time.
    ``held``: the lock, already taken by the caller. Raises ``SweepOwned``, with the run left as
    it was, when another live process holds it.
    """
    from backtesting.sweep_takeover import sweep_lock

    lock = sweep_lock(parent.pk)
    if held is not None:
        if held.name != lock.name or not held.held:
            raise ValueError(f"sweep #{parent.pk}: the lock passed in is not {lock.name}, held")
        yield
        return
    if not lock.acquire():
        raise SweepOwned(
            f"sweep #{parent.pk} is being worked by {lock.holder() or 'another process'}"
        )
    try:
        yield
    finally:
        lock.release()


def _sweep_run(
    parent: BacktestRun,
    method: str,
    space: Mapping[str, Any],
    objective: str,
    n_iter: int,
    seed: int,
    progress: Callable[[int, int], None] | None,
    report: str | Path | None,
    montecarlo: int,
    distributed: bool | None,
    resume: bool,
    helps: bool,
) -> SearchResult:
    if distributed is None:
        distributed = bool(settings.REDIS_URL) and not settings.Q_CLUSTER.get("sync")
    if not resume:
        _claim(parent)
    try:
        sweep_check(
            strategy=parent.strategy, method=method, space=space, n_iter=n_iter, objective=objective
        )
        evaluator = TaskEvaluator(parent, progress=progress, distributed=distributed, helps=helps)
        kwargs: dict[str, Any] = {"constraint": CONSTRAINTS.get(parent.strategy)}
        if method == "random":
            kwargs.update(n_iter=n_iter, seed=seed)
        elif method == "genetic":
            kwargs.update(seed=seed)
        found = search(method, space, evaluator, objective, **kwargs)
        BacktestRun.objects.filter(pk=parent.pk).update(params=_jsonable(found.best.params))
        parent.refresh_from_db()
        backtest_execute(run=parent, report=report, montecarlo=montecarlo, claim=False)
    except BaseException as exc:
        run_fail(parent, exc)
        raise
    parent.refresh_from_db()
    _store_search(parent, method, objective, found, _sweep_selection(found, evaluator.children))
    return found


def _sweep_selection(found: SearchResult, children: Sequence[BacktestRun]) -> dict[str, Any]:
    """Return PBO and the winner's deflated Sharpe from the trials' stored equity curves."""
    stored = dict(
        BacktestRun.objects.filter(pk__in=[c.pk for c in children]).values_list(
            "pk", "equity_curve"
        )
    )
    # The evaluator recorded one child per new trial, in the order the search kept them.
    columns = [[value for _, value in stored[c.pk]] for c in children]
    winner = next(i for i, t in enumerate(found.trials) if t is found.best)
    if len(columns) != len(found.trials) or len({len(c) for c in columns}) != 1:
        return {"unavailable": "the trials' equity curves do not line up"}
    try:
        return sweep_selection(np.array(columns, dtype=float).T, winner)
    except BacktestConfigError as exc:
        return {"unavailable": str(exc)}


def _store_search(
    parent: BacktestRun,
    method: str,
    objective: str,
    found: SearchResult,
    selection: Mapping[str, Any],
) -> None:
    metrics = {
        **parent.metrics,
        "search": {
            "method": method,
            "objective": objective,
            "maximize": found.maximize,
            "best_params": found.best.params,
            "best_score": found.best.score,
            "trials": found.to_frame().to_dict("records"),
            "selection": dict(selection),
        },
    }
    BacktestRun.objects.filter(pk=parent.pk).update(metrics=_jsonable(metrics))


def walkforward_execute(
    *,
    parent: BacktestRun,
    space: Mapping[str, Any],
    train: int,
    test: int,
    anchored: bool = False,
    objective: str = "sharpe",
    report: str | Path | None = None,
    distributed: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    resume: bool = False,
    lock: OwnerLock | None = None,
    helps: bool = False,
) -> Any:
    """Walk-forward optimisation: stitched out-of-sample equity and the parameter path.

    ``progress(done, total)`` follows the windows (a progress bar's feed).

    Each window's in-sample trials are a sweep's trials (one task each, recorded as children
    with the window's range), spread over the ``qcluster`` workers like ``sweep_execute``'s,
    and worked under the sweep's owner lock like it (``sweep_owned``; ``lock``: held already;
    ``helps``: this process is a qcluster worker and runs pending trials too).
    """
    with sweep_owned(parent, lock):
        return _walkforward_run(
            parent, space, train, test, anchored, objective, report, distributed, progress,
            resume, helps,
        )  # fmt: skip


def _walkforward_run(
    parent: BacktestRun,
    space: Mapping[str, Any],
    train: int,
    test: int,
    anchored: bool,
    objective: str,
    report: str | Path | None,
    distributed: bool | None,
    progress: Callable[[int, int], None] | None,
    resume: bool,
    helps: bool,
) -> Any:
    if distributed is None:
        distributed = bool(settings.REDIS_URL) and not settings.Q_CLUSTER.get("sync")
    if not resume:  # resumed: a sweep taken over (``sweep_execute``)
        _claim(parent)
    try:
        bars, origins = bars_for(
            symbols=parent.symbols,
            timeframe=parent.timeframe,
            start=parent.start,
            end=parent.end,
            source=parent.data_source,
        )
        wf = walk_forward(
            parent.strategy,
            bars,
            space,
            _costs_of(parent).config(parent.timeframe),
            train=train,
            test=test,
            anchored=anchored,
            objective=objective,
            engine="event",
            evaluator_factory=lambda data: TaskEvaluator(
                parent, distributed=distributed, window=_window_range(data), helps=helps
            ),
            search_kwargs={"constraint": CONSTRAINTS.get(parent.strategy)},
            progress=progress,
        )
        result = backtest_execute(run=parent, bars=bars, report=report, claim=False)
    except BaseException as exc:
        run_fail(parent, exc)
        raise
    parent.refresh_from_db()
    from backtesting.engine.report import write_report

    write_report(
        result, parent.report_path, title=f"walk-forward {parent.strategy}", walk_forward=wf
    )
    metrics = {
        **BacktestRun.objects.get(pk=parent.pk).metrics,
        "walk_forward": {
            "oos_metrics": wf.metrics,
            "parameter_path": wf.params_path().to_dict("records"),
            "anchored": anchored,
            "train_bars": train,
            "test_bars": test,
        },
        "data": origins,
    }
    BacktestRun.objects.filter(pk=parent.pk).update(metrics=_jsonable(metrics))
    return wf


def _window_range(data: Any) -> tuple[datetime, datetime]:
    """Return the first and last bar time of a walk-forward window's training bars."""
    return (
        pd.Timestamp(int(data.ts[0]), tz="UTC").to_pydatetime(),
        pd.Timestamp(int(data.ts[-1]), tz="UTC").to_pydatetime(),
    )


def _jsonable(value: Any) -> Any:
    """Return ``value`` with Decimals, datetimes, numpy scalars and NaN made JSON-safe."""
    import math

    import numpy as np

    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
