"""Feature-group contributions: a group that carries signal shows it, noise shows none."""

from __future__ import annotations

import numpy as np

from marketdata.engine.pointintime import asof_values, window_sums
from models_ml.engine.group_evaluation import evaluate_feature_groups
from tests.models_ml.engine.synthetic import SIGMA, bars_from_returns


def informed_bars(n: int, seed: int):
    """Bars whose next return follows the sentiment known at the close; flow is pure noise."""
    rng = np.random.default_rng(seed)
    sentiment = np.tanh(rng.normal(0, 1, n))
    r = np.empty(n)
    r[0] = 0.0
    r[1:] = SIGMA * (0.8 * np.sign(sentiment[:-1]) + rng.normal(0, 1, n - 1))
    frame = bars_from_returns(r, rng)
    frame["sentiment"] = sentiment
    buy = frame["volume"].to_numpy() * rng.uniform(0, 1, n)
    frame["buy_volume"], frame["sell_volume"] = buy, frame["volume"].to_numpy() - buy
    return frame


def test_signal_group_adds_out_of_sample_and_noise_does_not() -> None:
    frame = informed_bars(3000, seed=11)
    report = evaluate_feature_groups(
        frame, {"price": (), "sentiment": ("sentiment",), "flow": ("flow",)}, folds=4
    )
    sets = {s["features"]: s for s in report["sets"]}
    assert list(sets) == ["price", "price+sentiment", "price+flow", "all"]
    assert sets["price"]["auc"] < 0.56  # a random walk's own past says nothing
    assert sets["price+sentiment"]["delta_auc"] > 0.15
    assert sets["price+sentiment"]["accuracy"] > 0.6
    assert abs(sets["price+flow"]["delta_auc"]) < 0.04
    assert not any(s["flagged"] for s in sets.values())
    assert report["baselines"]["always_long"]["accuracy"] < 0.56
    assert report["test_rows"] > 2000


def test_missing_group_data_is_flagged() -> None:
    frame = informed_bars(1500, seed=3)
    frame.loc[frame.index[100:], "sentiment"] = np.nan  # one early reading, then nothing
    report = evaluate_feature_groups(frame, {"price": (), "sentiment": ("sentiment",)}, folds=3)
    sentiment = next(s for s in report["sets"] if s["features"] == "price+sentiment")
    assert sentiment["flagged"] and sentiment["coverage"] < 0.1


def test_asof_uses_only_values_known_by_the_decision() -> None:
    known = np.array([10, 20, 30], dtype=np.int64)
    values = np.array([1.0, 2.0, 3.0])
    decisions = np.array([5, 10, 19, 20, 29, 100], dtype=np.int64)
    np.testing.assert_array_equal(
        asof_values(decisions, known, values), [np.nan, 1.0, 1.0, 2.0, 2.0, 3.0]
    )
    sums = window_sums(
        np.array([0, 10]),
        np.array([10, 20]),
        np.array([0, 9, 10, 20]),
        np.array([1.0, 2.0, 4.0, 8.0]),
    )
    np.testing.assert_array_equal(sums, [3.0, 4.0])  # the event at 20 is in neither window
