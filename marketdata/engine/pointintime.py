"""Point-in-time (as-of) joins: what was known at each decision time, never anything later.

Pure numpy. A value observed at ``known_at`` may be used for a decision at ``t`` only if
``known_at <= t``. For a bar, the decision time is its close (window start + length); an
on-chain interval is known only at its own end, a sentiment reading at its timestamp.
"""

from __future__ import annotations

import numpy as np


def asof_values(decision_ns: np.ndarray, known_ns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Return, for each decision time, the latest value known at or before it (NaN if none).

    ``decision_ns`` and ``known_ns`` are int64 epoch nanoseconds; ``values`` is aligned with
    ``known_ns`` (any order: it is sorted here, ties keep the last given).
    """
    decision_ns = np.asarray(decision_ns, dtype=np.int64)
    known_ns = np.asarray(known_ns, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    out = np.full(len(decision_ns), np.nan)
    if len(known_ns) == 0:
        return out
    order = np.argsort(known_ns, kind="stable")
    known_sorted, values_sorted = known_ns[order], values[order]
    # side="right": a value known exactly at the decision time counts as known.
    position = np.searchsorted(known_sorted, decision_ns, side="right") - 1
    found = position >= 0
    out[found] = values_sorted[position[found]]
    return out


def window_sums(
    starts_ns: np.ndarray, ends_ns: np.ndarray, event_ns: np.ndarray, amounts: np.ndarray
) -> np.ndarray:
    """Return the sum of ``amounts`` of events inside each [start, end) window (0 if none)."""
    order = np.argsort(np.asarray(event_ns, dtype=np.int64), kind="stable")
    times = np.asarray(event_ns, dtype=np.int64)[order]
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(amounts, dtype=float)[order])])
    left = np.searchsorted(times, np.asarray(starts_ns, dtype=np.int64), side="left")
    right = np.searchsorted(times, np.asarray(ends_ns, dtype=np.int64), side="left")
    return cumulative[right] - cumulative[left]
