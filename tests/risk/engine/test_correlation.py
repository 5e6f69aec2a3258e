"""Rolling correlation tracker: hand-computed Pearson values, alignment, missing data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from risk.engine.correlation import CorrelationTracker
from risk.engine.errors import RiskInputError


def test_hand_computed_correlation() -> None:
    # x = 1,2,3,4; y = 1,3,2,4: Σdx·dy = 2.25 − 0.25 − 0.25 + 2.25 = 4, Σdx² = Σdy² = 5 -> 0.8
    tracker = CorrelationTracker(window=10, min_observations=4)
    for x, y in zip([1, 2, 3, 4], [1, 3, 2, 4], strict=True):
        tracker.update_returns({"X": x / 100, "Y": y / 100})
    assert tracker.correlation("X", "Y") == pytest.approx(0.8)
    assert tracker.correlation("Y", "X") == pytest.approx(0.8)
    assert dict(tracker.row("X")) == {"Y": pytest.approx(0.8)}


def test_unknown_until_min_observations() -> None:
    tracker = CorrelationTracker(window=10, min_observations=3)
    tracker.update_returns({"X": 0.01, "Y": 0.02})
    tracker.update_returns({"X": 0.02, "Y": 0.01})
    assert tracker.correlation("X", "Y") is None
    tracker.update_returns({"X": 0.03, "Y": 0.05})
    assert tracker.correlation("X", "Y") is not None
    assert tracker.correlation("X", "missing") is None


def test_constant_series_has_no_correlation() -> None:
    tracker = CorrelationTracker(window=10, min_observations=3)
    for r in (0.01, 0.02, 0.03, 0.04):
        tracker.update_returns({"X": r, "FLAT": 0.001, "ZERO": 0.0})
    assert tracker.correlation("X", "FLAT") is None
    assert tracker.correlation("X", "ZERO") is None


def test_window_rolls_and_pairs_align_on_the_latest_returns() -> None:
    rng = np.random.default_rng(3)
    tracker = CorrelationTracker(window=30, min_observations=20)
    a = rng.standard_normal(80)
    b = -a + 0.1 * rng.standard_normal(80)
    for value in a:
        tracker.update_return("A", float(value))
    for value in b[-25:]:  # B joins late: only its 25 returns are paired with A's last 25
        tracker.update_return("B", float(value))
    expected = np.corrcoef(a[-25:], b[-25:])[0, 1]
    assert tracker.correlation("A", "B") == pytest.approx(expected)
    assert tracker.observations("A") == 30


def test_update_price_derives_simple_returns() -> None:
    tracker = CorrelationTracker(window=5, min_observations=2)
    for p in (100.0, 110.0, 99.0):
        tracker.update_price("X", p)
    assert tracker.observations("X") == 2  # the first price only seeds
    for p in (10.0, 11.0, 9.9):
        tracker.update_price("Y", p)
    assert tracker.correlation("X", "Y") == pytest.approx(1.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.update_return("X", math.nan),
        lambda t: t.update_price("X", 0.0),
        lambda t: t.update_price("X", math.inf),
    ],
)
def test_bad_inputs_raise(call: object) -> None:
    with pytest.raises(RiskInputError):
        call(CorrelationTracker())  # type: ignore[operator]


def test_bad_configuration_raises() -> None:
    with pytest.raises(RiskInputError):
        CorrelationTracker(window=10, min_observations=11)


def test_batch_matrix_matches_pairwise_rows() -> None:
    rng = np.random.default_rng(11)
    data = rng.standard_normal((40, 6)) @ rng.standard_normal((6, 6))  # correlated columns
    data[:, 5] = 0.002  # one flat series
    names = [f"S{i}" for i in range(6)]
    batch = CorrelationTracker(window=30, min_observations=10)
    pairwise = CorrelationTracker(window=30, min_observations=10)
    for row in data:
        batch.update_returns(dict(zip(names, row.tolist(), strict=True)))
        for name, value in zip(names, row.tolist(), strict=True):
            pairwise.update_return(name, value)
    expected = np.corrcoef(data[-30:, :5].T)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if a == b:
                continue
            if "S5" in (a, b):
                assert batch.correlation(a, b) is None and pairwise.correlation(a, b) is None
            else:
                assert batch.correlation(a, b) == pytest.approx(expected[i, j])
                assert pairwise.correlation(a, b) == pytest.approx(expected[i, j])
