"""Look-ahead checks of a strategy by name (``backtest --lookahead-check``, ``strategy check``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from backtesting.engine.lookahead import (
    LookaheadReport,
    check_signal_recursive,
    check_strategy_lookahead,
)
from backtesting.engine.runner import BacktestConfig
from trading.engine.signal_strategy import SignalStrategy
from trading.engine.strategies import strategy_class


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _order(decision: tuple | None) -> str:
    """Return an order decision of the truncation check (``lookahead._decision``) for people."""
    if decision is None:
        return "no order"
    ts, symbol, side, quantity, kind, price, stop, signal = decision
    text = f"{side} {quantity} {symbol} {kind}"
    text += f" at {price}" if price is not None else ""
    text += f" stop {stop}" if stop is not None else ""
    return text + f" on {_value(ts)}" + (f" ({signal})" if signal else "")


@dataclass(frozen=True, slots=True)
class TruncationReport(LookaheadReport):
    """The truncation check's report, its first difference told as orders."""

    def message(self) -> str:
        """Return a one-line verdict: the cut, the order that differs, and both versions."""
        if self.ok:
            return LookaheadReport.message(self)
        first = self.divergences[0]
        return (
            f"{self.name} peeks ahead: cut after {_value(first.cut)}, its order "
            f"{first.position + 1} is {_order(first.full)} with every bar but "
            f"{_order(first.truncated)} with the bars up to the cut "
            f"({len(self.divergences)} of {len(self.cuts)} cuts differ)"
        )


@dataclass(frozen=True, slots=True)
class RecursiveReport(LookaheadReport):
    """The recursive check's report, its first difference told as column, bar and values."""

    window: int = 500  # the bars each row was recomputed on (the strategy's live_window)
    bars: int = 0  # the bars of the whole frame (0: not told)

    def message(self) -> str:
        """Return a one-line verdict: the column, the bar, and its value both ways."""
        if self.ok and 0 < self.bars <= self.window + 1:
            return LookaheadReport.message(self) + (
                f" (only {self.bars} bars, not more than live_window {self.window}: every row "
                "was recomputed from the first bar, so data read from outside the frame it is "
                "given could not show; check on more bars)"
            )
        if self.ok:
            return LookaheadReport.message(self)
        first = self.divergences[0]
        alone = f"the {self.window} bars up to it alone"
        if first.truncated == "missing":
            column, values = first.full, f"there from the whole frame, missing from {alone}"
        else:
            (column, whole), (_, part) = first.full, first.truncated
            values = f"{_value(whole)} from the whole frame, {_value(part)} from {alone}"
        return (
            f"{self.name} peeks ahead: column {column!r} at bar {first.position} "
            f"({_value(first.cut)}) is {values} "
            f"({len(self.divergences)} of {len(self.cuts)} bars checked differ)"
        )


def lookahead_reports(
    strategy: str,
    params: Mapping[str, Any],
    bars: pd.DataFrame,
    *,
    n_points: int = 5,
    seed: int = 0,
) -> list[LookaheadReport]:
    """Return the truncation check and, for a signal-style strategy, the recursive check
    (their verdicts told as orders, or as column, bar and values)."""
    cls = strategy_class(strategy)
    config = BacktestConfig()
    truncation = check_strategy_lookahead(
        lambda _frame: cls(**params), bars, config, n_points=n_points, seed=seed
    )
    reports: list[LookaheadReport] = [
        TruncationReport(f"{cls.name} (truncation)", truncation.cuts, truncation.divergences)
    ]
    if issubclass(cls, SignalStrategy):
        strategy = cls(**params)
        report = check_signal_recursive(strategy, bars, n_points=n_points, seed=seed)
        one = bars.loc[bars["symbol"] == bars["symbol"].iloc[0]] if "symbol" in bars else bars
        reports.append(RecursiveReport(f"{cls.name} (recursive)", report.cuts, report.divergences,
                                       int(strategy.live_window), len(one)))  # fmt: skip
    return reports
