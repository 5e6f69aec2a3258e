"""``backtest --vectorised``: run a stored run on the vectorised path and store what it found.

The vectorised path (``backtesting.engine.vectorised``) gives the same trades as the event-driven
engine for the built-in signal strategies and users' signal-style strategies (``SignalStrategy``,
by name or ``file.py:ClassName``) on one symbol (tested in
``tests/backtesting/engine/test_vectorised.py`` and ``test_vectorised_user.py``); it applies the
account's buying power but not risk limits, stops, book fills or volume caps, so runs that ask
for those are refused.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from backtesting.choices import RunStatus
from backtesting.engine.calendars import elapsed_years
from backtesting.engine.errors import UnsupportedStrategyError
from backtesting.engine.runner import prepare_bars
from backtesting.engine.vectorised import SUPPORTED, run_vectorised, vectorised_class
from backtesting.models import BacktestRun, BacktestTrade
from backtesting.services import (
    BacktestInputError,
    Costs,
    _costs_of,
    _jsonable,
    _thin,
    bars_for,
    run_fail,
    run_owned_claim,
)

ENGINE_NOTE = (
    "vectorised (array maths; the same trades as the event-driven engine for "
    f"{', '.join(SUPPORTED)} and signal-style strategies on one symbol)"
)


def vectorised_check(
    *, strategy: str, symbols: list[str], costs: Costs, optimize: str = ""
) -> None:
    """Refuse a run the vectorised path cannot reproduce exactly (before anything is written)."""
    problems = []
    try:
        vectorised_class(strategy)
    except UnsupportedStrategyError as exc:  # says why: not signal style, or its file failed
        problems.append(f"strategy {strategy!r}: {exc}")
    if len(symbols) != 1:
        problems.append(f"{len(symbols)} symbols (one at a time)")
    if costs.fill_model == "book":
        problems.append("--fill book")
    if costs.stops:
        problems.append("stops (event-driven only)")
    if (costs.risk or {}).get("limits"):
        problems.append("risk limits (it applies buying power only: add --no-risk)")
    if optimize:
        problems.append("--optimize (sweeps choose their own path)")
    if problems:
        raise BacktestInputError("--vectorised cannot run: " + "; ".join(problems))


def backtest_execute_vectorised(*, run: BacktestRun) -> dict[str, Any]:
    """Run ``run`` on the vectorised path; store its round trips, metrics and equity curve."""
    vectorised_check(
        strategy=run.strategy, symbols=run.symbols, costs=_costs_of(run), optimize=run.optimize
    )
    lock = run_owned_claim(run)
    try:
        bars, origins = bars_for(
            symbols=run.symbols,
            timeframe=run.timeframe,
            start=run.start,
            end=run.end,
            source=run.data_source,
        )
        config = _costs_of(run).config(run.timeframe)
        data = prepare_bars(bars, run.timeframe)
        result = run_vectorised(run.strategy, data, run.params, config)
        _store(run, result, origins, elapsed_years(data.ts, data.timeframe))
    except BaseException as exc:
        run_fail(run, exc)
        raise
    finally:
        lock.release()
    run.refresh_from_db()
    return run.metrics


@transaction.atomic
def _store(run: BacktestRun, result: Any, origins: dict[str, str], years: float) -> None:
    symbol = run.symbols[0]
    trades = []
    for t in result.trades:
        entry_value = t.quantity * t.entry_price
        trades.append(
            BacktestTrade(
                run=run,
                symbol=symbol,
                side=t.side,
                quantity=_money(t.quantity),
                entry_ts=result.timestamps(t.entry_index),
                entry_price=_money(t.entry_price),
                exit_ts=result.timestamps(t.exit_index),
                exit_price=None if t.exit_price is None else _money(t.exit_price),
                pnl=_money(t.pnl),
                return_pct=t.pnl / entry_value if entry_value else 0.0,
                fees=_money(t.fees),
                bars_held=(t.exit_index if t.exit_index is not None else len(result.ts) - 1)
                - t.entry_index,
            )
        )
    BacktestTrade.objects.bulk_create(trades)
    index = pd.to_datetime(np.asarray(result.ts), utc=True)
    equity = pd.Series(result.equity, index=index)
    metrics = {
        **result.metrics,
        "final_equity": str(_money(result.final_equity)),
        "engine": "vectorised",
        "data": origins,
    }
    if result.calendar is not None:
        metrics["calendar"] = {
            "name": result.calendar.name,
            "periods_per_year": result.calendar.periods_per_year,
            "years": years,
        }
    BacktestRun.objects.filter(pk=run.pk).update(
        status=RunStatus.COMPLETED,
        progress=1.0,
        metrics=_jsonable(metrics),
        equity_curve=_thin(equity),
        finished_at=timezone.now(),
    )


def _money(value: float) -> Decimal:
    """Return a float of the vectorised path as a Decimal at the stored precision."""
    return Decimal(repr(float(value))).quantize(Decimal("1e-10"))
