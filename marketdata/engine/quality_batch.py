"""Bulk validation of a run of trades, equal to ``QualityValidator.validate_trade`` one by one.

Per stream (venue, symbol), in blocks: numpy finds the first trade on which a state-changing
rule could fire (malformed value, duplicate id, sequence break, timestamp going back, a move
beyond the spike limit) assuming every earlier trade of the block was clean. The clean prefix
is committed in bulk: its z-scores and volume ratios (which only flag, so never change how the
state evolves) are computed with the scalar code's arithmetic, and the reference state ends
exactly where the scalar code would leave it. The breaking trade goes through
``validate_trade``. Streams whose rolling windows are not full yet (the first ``zscore_window``
trades, or after a confirmed level shift) are validated trade by trade.

Exactness: every float is computed by the same IEEE operation in the same order as the scalar
code. Running sums are sequential (``np.cumsum`` of the interleaved +new/-old terms, restarted
at the scalar code's periodic ``fsum``), logs come from ``math.log``, medians are order
statistics of the same values. ``tests/marketdata/engine/test_quality_batch.py`` checks results
and state against the scalar validator on random streams with injected faults.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from marketdata.engine.quality import (
    _MIN_RETURN_VARIANCE,
    ACCEPTED,
    Finding,
    QualityValidator,
    ValidationResult,
    Verdict,
    _numbered,
    _Series,
)

if TYPE_CHECKING:
    from marketdata.engine.trade_batch import TradeColumns

BLOCK = 1024  # trades of one stream screened per numpy pass
MIN_RUN = 32  # after a clean run shorter than this, as many trades go through the scalar rules
_INF = math.inf

Result = ValidationResult | Exception


def validate_trade_batch(
    validator: QualityValidator, columns: TradeColumns, catch: tuple[type[Exception], ...]
) -> list[Result]:
    """Validate ``columns.trades``; see ``QualityValidator.validate_trades``."""
    trades = columns.trades
    results: list[Result] = [ACCEPTED] * len(trades)
    if not columns.columnar:
        for i, trade in enumerate(trades):
            results[i] = _scalar(validator, trade, catch)
        return results
    for (venue, symbol), positions in columns.streams().items():
        series = validator.series_for(("t", venue, symbol), symbol)
        _StreamBatch(validator, series, columns, positions, results, catch).run()
    return results


def _scalar(validator: QualityValidator, trade, catch: tuple[type[Exception], ...]) -> Result:
    """Validate one trade with the scalar rules, returning a caught exception as the result."""
    try:
        return validator.validate_trade(trade)
    except catch as exc:
        return exc


class _StreamBatch:
    """The trades of one stream in a batch, validated block by block."""

    def __init__(self, validator, series: _Series, columns, positions, results, catch) -> None:
        self.validator = validator
        self.series = series
        self.t = series.t
        self.columns = columns
        self.positions = positions
        self.results = results
        self.catch = catch
        self.numbers: np.ndarray | None = None  # ring numbers of the last screened ids

    def run(self) -> None:
        """Validate every trade of the stream in arrival order."""
        positions = self.positions
        j, m = 0, len(positions)
        while j < m:
            scalar = MIN_RUN
            if self._steady():
                block = positions[j : j + BLOCK]
                clean = self._clean_prefix(block)
                if clean:
                    self._commit(block[:clean])
                j += clean
                if clean == len(block):
                    continue
                scalar = 1 if clean >= MIN_RUN else MIN_RUN
            trades, results = self.columns.trades, self.results
            for pos in positions[j : j + scalar].tolist():
                results[pos] = _scalar(self.validator, trades[pos], self.catch)
            j += scalar

    def _steady(self) -> bool:
        """Return True when the rolling windows are full and a reference price is set."""
        s, t = self.series, self.t
        return (
            s.last_price > 0.0
            and len(s.returns) == t.zscore_window
            and len(s.sizes) == t.volume_window
        )

    def _clean_prefix(self, block: np.ndarray) -> int:
        """Return how many trades from the start of ``block`` no state-changing rule touches."""
        cols, s, t = self.columns, self.series, self.t
        p, size, epoch = cols.price[block], cols.size[block], cols.epoch[block]
        prev_price = np.concatenate(([s.last_price], p[:-1]))
        prev_epoch = np.concatenate(([s.last_ts.timestamp()], epoch[:-1]))
        ok = (p > 0.0) & (p < _INF) & (size > 0.0) & (size < _INF)
        ok &= epoch >= prev_epoch
        ok &= np.abs(p - prev_price) <= t.price_spike_pct * prev_price
        clean = int(np.argmin(ok)) if not ok.all() else len(block)
        head = block[:clean].tolist()
        ids = cols.trade_id
        head_ids = [ids[i] for i in head]
        self.numbers = _ring_numbers(s, head_ids)
        clean = min(clean, _first_duplicate(s, head_ids, self.numbers))
        if t.check_sequence:
            sequences = cols.sequence
            clean = min(clean, _first_sequence_break(s, [sequences[i] for i in head]))
        return clean

    def _commit(self, block: np.ndarray) -> None:
        """Apply a clean run: flags from the z-score and volume rules, then the new state."""
        cols, s = self.columns, self.series
        chosen = block.tolist()
        p, size = cols.price[block], cols.size[block]
        prev_price = np.concatenate(([s.last_price], p[:-1]))
        z = self._zscores(p, prev_price)
        ratio = self._volume_ratios(size)
        t = self.t
        zflag = (z > t.zscore_limit) | (z < -t.zscore_limit)
        vflag = ratio > t.volume_spike_multiple
        trades = cols.trades
        for j in np.flatnonzero(zflag | vflag).tolist():
            self.results[chosen[j]] = self._flags(
                trades[chosen[j]],
                float(z[j]) if zflag[j] else None,
                float(ratio[j]) if vflag[j] else None,
            )
        last = trades[chosen[-1]]
        s.last_price = last.price
        s.last_ts = last.ts
        s.streak = 0
        if self.numbers is not None:  # the ids of the prefix of the block just screened
            _remember_numbers(s, self.numbers[: len(chosen)])
        else:
            ids = cols.trade_id
            s.remember([ids[i] for i in chosen if ids[i]])
        if t.check_sequence:
            sequences = [q for q in map(cols.sequence.__getitem__, chosen) if q is not None]
            if sequences:
                s.last_seq = sequences[-1]

    def _flags(self, trade, z: float | None, ratio: float | None) -> ValidationResult:
        """Build the result of a clean trade that the z-score and/or volume rule flagged."""
        findings: list[Finding] = []
        if z is not None:
            findings.append(self.validator.outlier_finding(z, self.t, trade.symbol, trade.ts))
        if ratio is not None:
            findings.append(
                self.validator.volume_finding(trade.size, ratio, trade.symbol, trade.ts)
            )
        return ValidationResult(Verdict.FLAG, tuple(findings))

    def _zscores(self, p: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """Return the z-scores of the run's log returns and leave the window as the scalar code."""
        s, t = self.series, self.t
        w = t.zscore_window
        r = np.array(list(map(math.log, (p / prev).tolist())))
        window = np.concatenate((np.array(s.returns), r))  # push i drops window[i]
        before_sum, s.rsum = _running(s.rsum, r, window, s.pushes, w, square=False)
        before_sq, s.rsq = _running(s.rsq, r, window, s.pushes, w, square=True)
        s.pushes = (s.pushes + len(r)) % w
        s.returns = deque(window[-w:].tolist())
        if w < t.zscore_min_samples:
            return np.zeros(len(r))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = before_sum / w
            var = before_sq / w - mean * mean
            usable = var > _MIN_RETURN_VARIANCE
            z = (r - mean) / np.sqrt(np.where(usable, var, 1.0))
        return np.where(usable, z, 0.0)

    def _volume_ratios(self, size: np.ndarray) -> np.ndarray:
        """Return size / rolling median for the run and leave the window as the scalar code."""
        s, t = self.series, self.t
        w = t.volume_window
        window = np.concatenate((np.array(s.sizes), size))
        views = sliding_window_view(window, w)[: len(size)]
        median = np.partition(views, w >> 1, axis=1)[:, w >> 1]
        kept = window[-w:].tolist()
        s.sizes = deque(kept)
        s.sorted_sizes = sorted(kept)
        if w < t.volume_min_samples:
            return np.zeros(len(size))
        return size / median


def _running(
    start: float, r: np.ndarray, window: np.ndarray, pushes: int, w: int, *, square: bool
) -> tuple[np.ndarray, float]:
    """Return the running sum before each push and after the last, as the scalar code adds.

    Push i adds r[i] (or its square) and drops window[i]; after every ``w``-th push since the
    counter last wrapped, the sum restarts from an exact ``fsum`` of the window.
    """
    add = r * r if square else r
    drop = window[: len(r)]
    drop = -(drop * drop) if square else -drop
    ops = np.empty(2 * len(r))
    ops[0::2], ops[1::2] = add, drop
    before = np.empty(len(r))
    first = 0
    total = start
    while first < len(r):
        last = min(len(r), first + w - pushes) if first == 0 else min(len(r), first + w)
        sums = np.cumsum(np.concatenate(([total], ops[2 * first : 2 * last])))
        before[first:last] = sums[0:-1:2]
        total = float(sums[-1])
        if (pushes + last) % w == 0:  # the scalar code re-sums its window exactly here
            kept = window[last : last + w]
            total = math.fsum((kept * kept if square else kept).tolist())
        first = last
    return before, total


def _first_duplicate(series: _Series, ids: list[str], numbers: np.ndarray | None) -> int:
    """Return the index of the first id remembered or repeated (len(ids) if none), as
    ``_Series.first_seen`` does; in bulk when ``numbers`` holds the ids' ring numbers."""
    if numbers is None:
        return series.first_seen(ids)
    ring = np.frombuffer(series.id_ring, dtype=np.int64)
    hit = ring[numbers % len(ring)] == numbers
    first = int(np.argmax(hit)) if hit.any() else len(ids)
    if not (np.diff(numbers) > 0).all():  # increasing numbers never repeat
        order = np.argsort(numbers, kind="stable")
        ordered = numbers[order]
        repeat = ordered[1:] == ordered[:-1]  # order[1:][repeat]: every later occurrence
        if repeat.any():
            first = min(first, int(order[1:][repeat].min()))
    return first


def _remember_numbers(series: _Series, numbers: np.ndarray) -> None:
    """Remember ring numbers as ``_Series.seen`` one by one would: each slot keeps its largest."""
    ring = np.frombuffer(series.id_ring, dtype=np.int64)
    np.maximum.at(ring, numbers % len(ring), numbers)
    following = int(numbers[-1]) + 1
    if following < 10**18:
        series.id_next_number = following
        series.id_next = series.id_prefix + str(following)


def _ring_numbers(series: _Series, ids: list[str]) -> np.ndarray | None:
    """Return the ids' numbers when each is a canonical number with the stream's prefix.

    None (check one by one) when the ring is not set up yet or any id is something else:
    empty, another prefix, "007", "+7", over 18 digits. Consecutive ids, the usual case, are
    recognised without parsing each one.
    """
    if series.id_ring is None or not ids:
        return None
    prefix = series.id_prefix
    cut = len(prefix)
    first = _numbered(ids[0])
    if first is not None and first[0] == prefix:
        start = first[1]
        stop = start + len(ids)
        if stop <= 10**18 and ids == [prefix + str(n) for n in range(start, stop)]:
            return np.arange(start, stop, dtype=np.int64)
    if cut and any(x[:cut] != prefix for x in ids):
        return None
    digits = [x[cut:] for x in ids] if cut else ids
    try:
        numbers = list(map(int, digits))
    except ValueError:
        return None
    if list(map(str, numbers)) != digits:
        return None
    array = np.array(numbers)
    if array.dtype != np.int64 or array.min() < 0 or array.max() >= 10**18:
        return None
    return array


def _first_sequence_break(series: _Series, sequences: list[int | None]) -> int:
    """Return the index of the first sequence that is not the previous one plus one."""
    if sequences.count(None) == len(sequences):
        return len(sequences)
    last = series.last_seq
    for j, seq in enumerate(sequences):
        if seq is None:
            continue
        if last is not None and seq != last + 1:
            return j
        last = seq
    return len(sequences)
