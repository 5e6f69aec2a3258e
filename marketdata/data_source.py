"""The ``--source`` flag shared by the commands that read history (backtest, train, ...)."""

from __future__ import annotations

from argparse import ArgumentParser

DATA_SOURCES = ("database", "sim")  # where a command's bars come from; imports nothing heavy

DATA_SOURCE_HELP = (
    "Where bars come from: 'database' (default: stored bars observed on a venue; none in the "
    "range is an error that says how to backfill them) or 'sim' (the simulated market's bars, "
    "generated when missing and stored marked simulated, never mixed into real history)"
)


def add_data_source_argument(parser: ArgumentParser) -> None:
    """Add ``--source database|sim`` to a command's parser."""
    parser.add_argument("--source", choices=DATA_SOURCES, default="database", help=DATA_SOURCE_HELP)
