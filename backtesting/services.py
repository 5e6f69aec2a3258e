"""Writes for backtesting: run a backtest or a parameter sweep and record it as BacktestRuns.

A sweep is a parent ``BacktestRun`` whose children are one parameter set each; every child is its
own django-q2 task in the parent's group, so a sweep spreads over every ``qcluster`` worker on
the broker. The parent collects the children's metrics, picks the best set by the objective and
runs it in full (trades, report).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backtesting.choices import RunStatus
from backtesting.engine.fills import FixedBps, NoSlippage
from backtesting.engine.montecarlo import block_bootstrap, shuffle_trades
from backtesting.engine.optimize import (
    Choice,
    FloatRange,
    IntRange,
    SearchResult,
    search,
    walk_forward,
)
from backtesting.engine.report import write_report
from backtesting.engine.result import BacktestResult
from backtesting.engine.runner import BacktestConfig, BacktestRunner
from backtesting.models import BacktestRun, BacktestTrade
from marketdata.services import bars_load_or_simulate
from trading.engine.strategies import create_strategy

logger = logging.getLogger(__name__)
EQUITY_POINTS = 2_000  # stored equity curve is thinned to this many points
CHILD_POLL_SECONDS = 0.5

# Default search spaces per built-in strategy (overridable with --space name=lo:hi:step).
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "sma_cross": {"fast": IntRange(5, 30, 5), "slow": IntRange(20, 100, 10)},
    "rsi_reversion": {
        "period": IntRange(7, 21, 7),
        "lower": IntRange(20, 35, 5),
        "upper": IntRange(65, 80, 5),
    },
    "bollinger_breakout": {"period": IntRange(10, 40, 10), "k": FloatRange(1.5, 3.0, 0.5)},
}
CONSTRAINTS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "sma_cross": lambda p: p["fast"] < p["slow"],
    "rsi_reversion": lambda p: p["lower"] < p["upper"],
}


class BacktestInputError(ValueError):
    """A backtest request that cannot run (unknown strategy, empty data, bad space)."""


@dataclass(frozen=True, slots=True)
class Costs:
    """Fill model and costs of a run."""

    fill_model: str = "next_open"
    fees_bps: Decimal = Decimal("10")
    slippage_bps: Decimal = Decimal("0")
    initial_capital: Decimal = Decimal("100000")

    def config(self, timeframe: str) -> BacktestConfig:
        """Return the engine configuration."""
        slippage = FixedBps(float(self.slippage_bps)) if self.slippage_bps else NoSlippage()
        return BacktestConfig(
            initial_cash=self.initial_capital,
            fill_model=self.fill_model,
            taker_fee_bps=self.fees_bps,
            maker_fee_bps=self.fees_bps,
            slippage=slippage,
            timeframe=timeframe,
        )


def parse_space(strategy: str, overrides: Sequence[str]) -> dict[str, Any]:
    """Return the search space: defaults for the strategy, with ``name=lo:hi:step`` overrides."""
    space = dict(DEFAULT_SPACES.get(strategy, {}))
    for item in overrides:
        name, sep, spec = item.partition("=")
        parts = spec.split(":")
        if not sep or len(parts) not in (2, 3):
            raise BacktestInputError(f"--space expects name=low:high[:step], got {item!r}")
        if any("." in p for p in parts):
            low, high, *step = (float(p) for p in parts)
            space[name] = FloatRange(low, high, step[0] if step else (high - low) / 4)
        elif "," in spec:
            space[name] = Choice(tuple(spec.split(",")))
        else:
            low, high, *step = (int(p) for p in parts)
            space[name] = IntRange(low, high, step[0] if step else 1)
    if not space:
        raise BacktestInputError(f"no search space for {strategy!r}: give --space name=lo:hi:step")
    return space


def bars_for(
    *,
    symbols: Sequence[str],
    timeframe: str,
    start: datetime,
    end: datetime,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Return the long bars frame (ts, symbol, OHLCV) and each symbol's data origin."""
    frames, origins = [], {}
    for symbol in symbols:
        bars, origin = bars_load_or_simulate(
            symbol=symbol, timeframe=timeframe, start=start, end=end
        )
        origins[symbol] = origin
        frame = bars.reset_index()  # ts, OHLCV, vwap, trade_count (models use them)
        frame.insert(1, "symbol", symbol)
        frames.append(frame)
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
) -> BacktestRun:
    """Record a pending run (validates the strategy and its parameters first)."""
    try:
        create_strategy(strategy, **params)
    except Exception as exc:
        raise BacktestInputError(f"strategy {strategy!r}: {exc}") from exc
    if end <= start:
        raise BacktestInputError("end must be after start")
    return BacktestRun.objects.create(
        name=name,
        parent=parent,
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
        optimize=optimize,
        task_group=f"backtest-{uuid.uuid4().hex[:12]}" if optimize else "",
    )


def _costs_of(run: BacktestRun) -> Costs:
    return Costs(run.fill_model, run.fees_bps, run.slippage_bps, run.initial_capital)


def _claim(run: BacktestRun) -> None:
    """Move a pending run to running (never runs twice)."""
    claimed = BacktestRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        raise BacktestInputError(f"backtest #{run.pk} is not pending")
    run.refresh_from_db()


def backtest_execute(
    *,
    run: BacktestRun,
    progress: Callable[[float], None] | None = None,
    report: str | Path | None = None,
    montecarlo: int = 0,
    bars: pd.DataFrame | None = None,
) -> BacktestResult:
    """Run one backtest and store trades, metrics, equity curve and the report."""
    _claim(run)
    try:
        if bars is None:
            bars, origins = bars_for(
                symbols=run.symbols, timeframe=run.timeframe, start=run.start, end=run.end
            )
        else:
            origins = {s: "given" for s in run.symbols}
        result = _run_engine(run, bars, progress)
        mc = _montecarlo(result, float(run.initial_capital), montecarlo) if montecarlo else []
        path = _report_path(run, report)
        write_report(result, path, title=f"{run.strategy} {','.join(run.symbols)}", montecarlo=mc)
        _store_result(
            run, result, path, {"data": origins, "montecarlo": {m.method: m.summary() for m in mc}}
        )
        return result
    except Exception as exc:
        BacktestRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
        )
        raise


def _run_engine(
    run: BacktestRun, bars: pd.DataFrame, progress: Callable[[float], None] | None
) -> BacktestResult:
    runner = BacktestRunner(_costs_of(run).config(run.timeframe))
    runner.add(create_strategy(run.strategy, **run.params))
    every = max(1_000, len(bars) // 100)

    def report_progress(done: int, of: int) -> None:
        fraction = min(1.0, done / max(1, of))
        BacktestRun.objects.filter(pk=run.pk).update(progress=fraction)
        if progress is not None:
            progress(fraction)

    predictions = _model_predictions(run, bars) if run.strategy == "model_signal" else []
    return runner.run(bars, predictions=predictions, progress=report_progress, progress_every=every)


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
        return Path(report)
    return Path(settings.REPORTS_DIR) / f"backtest_{run.pk}.html"


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
    BacktestTrade.objects.bulk_create(
        [
            BacktestTrade(
                run=run,
                symbol=t.symbol,
                side=t.side,
                quantity=t.quantity,
                entry_ts=t.entry_ts,
                entry_price=t.entry_price,
                exit_ts=t.exit_ts,
                exit_price=t.exit_price,
                pnl=t.pnl,
                return_pct=t.return_pct,
                fees=t.fees,
                bars_held=t.bars_held,
            )
            for t in result.trades
        ]
    )
    metrics = {
        **result.metrics,
        "final_equity": str(result.final_equity),
        "orders": len(result.orders),
        "fills": len(result.fills),
        "buy_and_hold": _baseline(result),
        **extra,
    }
    BacktestRun.objects.filter(pk=run.pk).update(
        status=RunStatus.COMPLETED,
        progress=1.0,
        metrics=_jsonable(metrics),
        equity_curve=_thin(result.equity),
        report_path=str(report),
        finished_at=timezone.now(),
    )


# ---------------------------------------------------------------------------------- sweeps


def _child_task(child_id: int) -> dict:
    """django-q2 task body: run one parameter set of a sweep (metrics only, no report)."""
    child = BacktestRun.objects.get(pk=child_id)
    _claim(child)
    try:
        bars, _ = bars_for(
            symbols=child.symbols, timeframe=child.timeframe, start=child.start, end=child.end
        )
        result = _run_engine(child, bars, None)
    except Exception as exc:
        BacktestRun.objects.filter(pk=child.pk).update(
            status=RunStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
        )
        raise
    BacktestRun.objects.filter(pk=child.pk).update(
        status=RunStatus.COMPLETED,
        progress=1.0,
        metrics=_jsonable(result.metrics),
        finished_at=timezone.now(),
    )
    return {"run": child.pk, "metrics": _jsonable(result.metrics)}


class TaskEvaluator:
    """A ``BatchEvaluator`` that runs each parameter set as its own django-q2 task."""

    def __init__(
        self,
        parent: BacktestRun,
        *,
        timeout: float = 3600,
        distributed: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.parent = parent
        # False: each trial still runs as a django-q task (group, stored result) but inline, for
        # the embedded default where no qcluster may be running.
        self.distributed = distributed
        self.timeout = timeout
        self.progress = progress
        self.children: list[BacktestRun] = []

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> list[Mapping[str, float]]:
        """Enqueue one task per parameter set in the parent's group; wait for all of them."""
        from django_q.tasks import async_task

        parent = self.parent
        children = [
            backtest_run_create(
                strategy=parent.strategy,
                params=params,
                symbols=parent.symbols,
                timeframe=parent.timeframe,
                start=parent.start,
                end=parent.end,
                costs=_costs_of(parent),
                parent=parent,
                name=f"{parent.name or parent.strategy} trial",
            )
            for params in batch
        ]
        self.children += children
        for child in children:
            async_task(
                "backtesting.tasks.backtest_child_task",
                child.pk,
                group=parent.task_group,
                timeout=int(self.timeout),
                sync=not self.distributed,
            )
        return self._collect([c.pk for c in children])

    def _collect(self, ids: list[int]) -> list[Mapping[str, float]]:
        deadline = time.monotonic() + self.timeout
        while True:
            rows = {r.pk: r for r in BacktestRun.objects.filter(pk__in=ids)}
            done = [r for r in rows.values() if r.status in (RunStatus.COMPLETED, RunStatus.FAILED)]
            if self.progress is not None:
                self.progress(len(done), len(ids))
            if len(done) == len(ids):
                return [
                    rows[i].metrics
                    if rows[i].status == RunStatus.COMPLETED
                    else {"sharpe": float("nan")}
                    for i in ids
                ]
            if time.monotonic() > deadline:
                raise TimeoutError(f"sweep trials still running after {self.timeout:.0f}s")
            time.sleep(CHILD_POLL_SECONDS)


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
) -> SearchResult:
    """Search parameters with one task per set, then run the best set in full on the parent.

    ``distributed`` (default: when a Redis broker is configured) sends every trial to the
    ``qcluster`` workers; otherwise the trials run inline as synchronous django-q tasks.
    """
    if distributed is None:
        distributed = bool(settings.REDIS_URL) and not settings.Q_CLUSTER.get("sync")
    evaluator = TaskEvaluator(parent, progress=progress, distributed=distributed)
    kwargs: dict[str, Any] = {"constraint": CONSTRAINTS.get(parent.strategy)}
    if method == "random":
        kwargs.update(n_iter=n_iter, seed=seed)
    elif method == "genetic":
        kwargs.update(seed=seed)
    found = search(method, space, evaluator, objective, **kwargs)
    BacktestRun.objects.filter(pk=parent.pk).update(params=_jsonable(found.best.params))
    parent.refresh_from_db()
    backtest_execute(run=parent, report=report, montecarlo=montecarlo)
    parent.refresh_from_db()
    search_table = found.to_frame().to_dict("records")
    metrics = {
        **parent.metrics,
        "search": {
            "method": method,
            "objective": objective,
            "best_params": found.best.params,
            "best_score": found.best.score,
            "trials": search_table,
        },
    }
    BacktestRun.objects.filter(pk=parent.pk).update(metrics=_jsonable(metrics))
    return found


def walkforward_execute(
    *,
    parent: BacktestRun,
    space: Mapping[str, Any],
    train: int,
    test: int,
    anchored: bool = False,
    objective: str = "sharpe",
    report: str | Path | None = None,
) -> Any:
    """Walk-forward optimisation: stitched out-of-sample equity and the parameter path."""
    bars, origins = bars_for(
        symbols=parent.symbols, timeframe=parent.timeframe, start=parent.start, end=parent.end
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
        search_kwargs={"constraint": CONSTRAINTS.get(parent.strategy)},
    )
    result = backtest_execute(run=parent, bars=bars, report=report)
    parent.refresh_from_db()
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
