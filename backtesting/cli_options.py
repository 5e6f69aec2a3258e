"""``backtest`` flags for where bars come from, protective stops and the engine path.

Kept apart from the command so ``--help`` stays light (nothing heavy is imported here).
"""

from __future__ import annotations

from argparse import ArgumentParser
from decimal import Decimal

from marketdata.data_source import add_data_source_argument

STOP_OPTIONS = ("stop_loss", "trailing_stop", "atr_stop", "max_hold")


def add_stop_arguments(parser: ArgumentParser) -> None:
    """Add runtrader's stop flags (the same enforcer closes positions in the backtest)."""
    stops = parser.add_argument_group(
        "protective stops (runtrader's stop enforcer; judged on each bar's close, the exit "
        "fills like any order)"
    )
    stops.add_argument(
        "--stop-loss",
        type=Decimal,
        metavar="FRACTION",
        help="Close any position this far below (long) / above (short) its entry",
    )
    stops.add_argument(
        "--trailing-stop",
        type=Decimal,
        metavar="FRACTION",
        help="Close any position this far from its best price",
    )
    stops.add_argument(
        "--atr-stop",
        type=Decimal,
        metavar="K",
        help="Trailing stop K x ATR(14) of the backtest's bars from the best price",
    )
    stops.add_argument(
        "--max-hold",
        type=float,
        metavar="SECONDS",
        help="Close any position held longer than this",
    )


def add_backtest_run_arguments(parser: ArgumentParser) -> None:
    """Add ``--source``, the stop flags, ``--allow-in-sample`` and ``--vectorised``."""
    add_data_source_argument(parser)
    add_stop_arguments(parser)
    parser.add_argument(
        "--allow-in-sample",
        action="store_true",
        help="model_signal: run even when the range overlaps the active model's training "
        "range (its figures are then in-sample, not evidence of an edge)",
    )
    parser.add_argument(
        "--vectorised",
        action="store_true",
        help="Run the vectorised path (array maths, built-in strategies with decision tables; "
        "the same trades as the event-driven engine) instead of the event-driven engine",
    )


def stop_options(options: dict) -> dict:
    """Return the stop flags that were given, JSON-ready (Decimals as strings)."""
    return {
        key: str(options[key]) if isinstance(options[key], Decimal) else options[key]
        for key in STOP_OPTIONS
        if options.get(key) is not None
    }
