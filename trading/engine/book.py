"""The paper venue's view of one symbol's order book, in Decimal.

Levels are mutable ``[price, size]`` pairs, best first, so our own taker fills can consume
liquidity until the next snapshot replaces it. Without a real book (trade- or bar-only feeds) the
book is *synthetic*: one level each side around the last price, ``depth`` deep (unlimited when
``None``), ``spread_bps`` wide.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_FLOOR, Decimal

from trading.engine.money import BPS, SIZE_STEP, to_decimal

UNLIMITED = Decimal("Infinity")
_TWO = Decimal(2)

Level = list[Decimal]  # [price, size]


def to_size(value: float) -> Decimal:
    """Return a market size (a level's, a print's) as the venue may fill it: in ``SIZE_STEP``s.

    A float size carries binary noise (0.1 + 0.2 = 0.30000000000000004): taken as is, an order
    that filled 0.3 of that level left 4e-17 in it, and the next order filled that dust, a fill
    the database's 10 decimal places store as 0 (its check refused it, and every write after).
    """
    size = to_decimal(value)
    if size.as_tuple().exponent < -10:  # finer than the step: floored (exact sizes kept as is)
        size = size.quantize(SIZE_STEP, rounding=ROUND_FLOOR)
    return size


def _levels(raw: Iterable[tuple[float, float]]) -> list[Level]:
    levels = [[to_decimal(p), to_size(s)] for p, s in raw if s > 0]
    return [level for level in levels if level[1] > 0]


class PaperBook:
    """Bids (highest first) and asks (lowest first) plus the last trade price."""

    __slots__ = ("asks", "bids", "depth", "last", "spread_bps", "synthetic")

    def __init__(self, spread_bps: Decimal, depth: Decimal | None) -> None:
        self.bids: list[Level] = []
        self.asks: list[Level] = []
        self.last: Decimal | None = None
        self.synthetic = True
        self.spread_bps = spread_bps
        self.depth = UNLIMITED if depth is None else depth

    def replace(
        self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]
    ) -> None:
        """Replace every level from a full snapshot; the book is real from now on."""
        self.bids = _levels(bids)
        self.asks = _levels(asks)
        self.synthetic = False

    def set_top(self, bid: Decimal, bid_size: Decimal, ask: Decimal, ask_size: Decimal) -> None:
        """Apply a top-of-book quote: levels at or through the new touch are stale."""
        self.synthetic = False
        if bid > 0 and bid_size > 0:
            self.bids = [[bid, bid_size], *(lvl for lvl in self.bids if lvl[0] < bid)]
        if ask > 0 and ask_size > 0:
            self.asks = [[ask, ask_size], *(lvl for lvl in self.asks if lvl[0] > ask)]

    def on_print(self, price: Decimal, size: Decimal) -> None:
        """Record a trade print: recentre a synthetic book, trim a real one."""
        self.last = price
        if self.synthetic:
            half = price * self.spread_bps / BPS / _TWO
            self.bids = [[price - half, self.depth]]
            self.asks = [[price + half, self.depth]]
            return
        # No resting liquidity survived strictly through the print; the print itself shows
        # liquidity at its price, which keeps a stale book from going empty on that side.
        if self.asks and self.asks[0][0] < price:
            rest = [lvl for lvl in self.asks if lvl[0] >= price]
            self.asks = rest if rest and rest[0][0] == price else [[price, size], *rest]
        if self.bids and self.bids[0][0] > price:
            rest = [lvl for lvl in self.bids if lvl[0] <= price]
            self.bids = rest if rest and rest[0][0] == price else [[price, size], *rest]

    def mid(self) -> Decimal | None:
        """Return the mid price, else the last trade price, else None."""
        if self.bids and self.asks:
            return (self.bids[0][0] + self.asks[0][0]) / _TWO
        return self.last

    def available(self, buy: bool, limit: Decimal | None, needed: Decimal) -> bool:
        """Return True if ``needed`` can be taken from the book within ``limit``."""
        total = Decimal(0)
        for price, size in self.asks if buy else self.bids:
            if limit is not None and (price > limit if buy else price < limit):
                return False
            total += size
            if total >= needed:
                return True
        return False
