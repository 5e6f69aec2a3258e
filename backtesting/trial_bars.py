"""Bars for a sweep's trials, loaded once per worker process instead of once per trial.

Every trial of a sweep (and every in-sample trial of a walk-forward window) runs on the bars of
its parent's range. A ``qcluster`` worker process that runs many trials of one sweep reads those
bars from the database once and keeps them here; the next trial of the same sweep slices them.

The cache is keyed by the sweep (its parent run) as well as by symbols, timeframe, range and
source, so a later sweep always reads the database afresh (bars may have been backfilled since),
and it is bounded by entries and by bytes, oldest dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

MAX_ENTRIES = 4
MAX_BYTES = 512 * 1024 * 1024

BarsKey = tuple[int, tuple[str, ...], str, datetime, datetime, str]
Loader = Callable[[], tuple[pd.DataFrame, dict[str, str]]]


@dataclass(slots=True)
class CacheInfo:
    """How the cache of this process did: loads from the database, hits, what it holds."""

    loads: int = 0
    hits: int = 0
    entries: int = 0
    bytes: int = 0


class TrialBarsCache:
    """A bounded, thread-safe LRU of bars frames for this process."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._frames: OrderedDict[BarsKey, tuple[pd.DataFrame, dict[str, str], int]] = OrderedDict()
        self._lock = threading.Lock()
        self.info = CacheInfo()

    def get(self, key: BarsKey, load: Loader) -> tuple[pd.DataFrame, dict[str, str]]:
        """Return the frame of ``key``, calling ``load()`` only when this process lacks it."""
        with self._lock:
            found = self._frames.get(key)
            if found is not None:
                self._frames.move_to_end(key)
                self.info.hits += 1
                return found[0], found[1]
        frame, origins = load()  # outside the lock: a slow read never blocks other keys
        size = int(frame.memory_usage(deep=True).sum())
        with self._lock:
            self.info.loads += 1
            if size <= self.max_bytes:
                self._frames[key] = (frame, origins, size)
                self._frames.move_to_end(key)
                self._evict()
        return frame, origins

    def _evict(self) -> None:
        while self._frames and (
            len(self._frames) > self.max_entries or self._held_bytes() > self.max_bytes
        ):
            self._frames.popitem(last=False)
        self.info.entries = len(self._frames)
        self.info.bytes = self._held_bytes()

    def _held_bytes(self) -> int:
        return sum(size for _, _, size in self._frames.values())

    def clear(self) -> None:
        """Forget every frame and the counts."""
        with self._lock:
            self._frames.clear()
            self.info = CacheInfo()


CACHE = TrialBarsCache()


def bars_key(
    *,
    sweep: int,
    symbols: Sequence[str],
    timeframe: str,
    start: datetime,
    end: datetime,
    source: str,
) -> BarsKey:
    """Return the cache key of a sweep's bars."""
    return (sweep, tuple(symbols), timeframe, start, end, source)


def slice_range(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Return the rows of a long bars frame stamped from ``start`` to ``end`` (both included)."""
    ts = frame["ts"]
    return frame[(ts >= pd.Timestamp(start)) & (ts <= pd.Timestamp(end))].reset_index(drop=True)
