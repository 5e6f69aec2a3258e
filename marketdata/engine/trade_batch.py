"""A run of trades as columns, read once and shared by the batch validator and aggregators.

The batch paths (``QualityValidator.validate_trades``, ``BarAggregator.add_batch``) give exactly
the results of the one-trade-at-a-time code on the same trades, state included. They use numpy
only where the arithmetic is the same IEEE operation in the same order; anything else (a
non-float price, a naive timestamp, a rule that could fire and change the reference state) goes
through the scalar code for the trades concerned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from marketdata.engine.events import Trade

_EMPTY = np.empty(0)


@dataclass(frozen=True, slots=True)
class TradeColumns:
    """The fields of ``trades`` (in arrival order) as lists, and as float64 arrays for numbers.

    ``columnar`` is False unless every price and size is a float, every timestamp an aware
    datetime, every symbol, venue and trade id a string and every sequence an int or None: then
    the arrays are empty and every consumer takes the scalar path (which raises or quarantines
    exactly as before). Epoch seconds order aware datetimes exactly: microseconds stay distinct
    in a float64 until about the year 2240.
    """

    trades: Sequence[Trade]
    symbol: list[str]
    venue: list[str]
    trade_id: list[str]
    sequence: list[int | None]
    price: np.ndarray
    size: np.ndarray
    epoch: np.ndarray
    columnar: bool
    names: list[str]  # distinct symbols, first seen first
    code: np.ndarray  # index into ``names`` of each trade's symbol

    @classmethod
    def of(cls, trades: Sequence[Trade]) -> TradeColumns:
        """Read the columns of ``trades``."""
        symbol = [t.symbol for t in trades]
        venue = [t.venue for t in trades]
        trade_id = [t.trade_id for t in trades]
        sequence = [t.sequence for t in trades]
        prices = [t.price for t in trades]
        sizes = [t.size for t in trades]
        stamps = [t.ts for t in trades]
        plain = (
            set(map(type, prices)) <= {float}
            and set(map(type, sizes)) <= {float}
            and set(map(type, stamps)) <= {datetime}
            and None not in {ts.tzinfo for ts in stamps}
            and set(map(type, symbol)) <= {str}
            and set(map(type, venue)) <= {str}
            and set(map(type, trade_id)) <= {str}
            and set(map(type, sequence)) <= {int, type(None)}
        )
        if not plain:
            empty = _EMPTY
            return cls(
                trades, symbol, venue, trade_id, sequence, empty, empty, empty, False, [], empty
            )
        epoch = np.array([ts.timestamp() for ts in stamps])
        price, size = np.array(prices), np.array(sizes)
        codes = {name: code for code, name in enumerate(dict.fromkeys(symbol))}
        code = np.fromiter(map(codes.__getitem__, symbol), np.intp, len(symbol))
        columns = (price, size, epoch, True, list(codes), code)
        return cls(trades, symbol, venue, trade_id, sequence, *columns)

    def __len__(self) -> int:
        return len(self.trades)

    def streams(self) -> dict[tuple[str, str], np.ndarray]:
        """Return the positions of each (venue, symbol), ascending, in first-seen order."""
        venues = set(self.venue)
        if len(venues) == 1:
            venue = venues.pop()
            groups = group_positions(self.code, len(self.names))
            return {(venue, self.names[c]): pos for c, pos in groups.items()}
        keys = list(zip(self.venue, self.symbol, strict=True))
        codes = {key: code for code, key in enumerate(dict.fromkeys(keys))}
        coded = np.fromiter(map(codes.__getitem__, keys), np.intp, len(keys))
        groups = group_positions(coded, len(codes))
        return {key: groups[c] for key, c in codes.items()}


def group_positions(codes: np.ndarray, count: int) -> dict[int, np.ndarray]:
    """Return the positions of each code in 0..count-1 (all present), ascending."""
    if count == 1:
        return {0: np.arange(len(codes))}
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(count + 1))
    return {c: order[bounds[c] : bounds[c + 1]] for c in range(count)}
