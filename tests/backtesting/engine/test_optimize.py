"""Grid, random and genetic search with pluggable batch evaluators; walk-forward analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtesting.engine.errors import BacktestConfigError
from backtesting.engine.optimize import (
    Choice,
    FloatRange,
    GeneticSettings,
    IntRange,
    evaluate_params,
    genetic_search,
    grid,
    grid_search,
    local_evaluator,
    random_search,
    search,
    sequential,
    stitch,
    walk_forward,
    walk_forward_windows,
)
from backtesting.engine.runner import BacktestConfig, prepare_bars
from tests.backtesting.engine.helpers import D, walk_frame


def peak(params: dict) -> dict[str, float]:
    """A known landscape: best at x = 17, y = 'b'."""
    bonus = {"a": 0.0, "b": 5.0, "c": 1.0}[params["y"]]
    return {"score": -((params["x"] - 17) ** 2) + bonus, "sharpe": params["x"] / 10}


class CountingEvaluator:
    """Batch evaluator recording each batch (as a task dispatcher would see them)."""

    def __init__(self) -> None:
        self.batches: list[list[dict]] = []

    def __call__(self, batch):
        self.batches.append([dict(p) for p in batch])
        return [peak(p) for p in batch]


SPACE = {"x": IntRange(0, 40), "y": Choice(("a", "b", "c"))}


def test_grid_enumerates_respects_constraints_and_finds_the_best() -> None:
    combos = grid({"fast": [5, 10, 20], "slow": [10, 30]}, lambda p: p["fast"] < p["slow"])
    assert combos == [{"fast": 5, "slow": 10}, {"fast": 5, "slow": 30}, {"fast": 10, "slow": 30},
                      {"fast": 20, "slow": 30}]  # fmt: skip
    evaluator = CountingEvaluator()
    result = grid_search(SPACE, evaluator, "score")
    assert len(evaluator.batches) == 1 and len(evaluator.batches[0]) == 41 * 3
    assert result.best.params == {"x": 17, "y": "b"}
    assert len(result.to_frame()) == 123


def test_random_search_is_seeded_and_minimises_when_asked() -> None:
    a = random_search(SPACE, sequential(peak), "score", n_iter=30, seed=4)
    b = random_search(SPACE, sequential(peak), "score", n_iter=30, seed=4)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    low = random_search(SPACE, sequential(peak), "score", n_iter=30, seed=4, maximize=False)
    assert low.best.score == min(t.score for t in low.trials)
    floats = random_search({"k": FloatRange(1.0, 2.0)}, sequential(lambda p: {"s": p["k"]}), "s")
    assert all(1.0 <= t.params["k"] <= 2.0 for t in floats.trials)


def test_genetic_search_converges_one_batch_per_generation() -> None:
    evaluator = CountingEvaluator()
    settings = GeneticSettings(population=12, generations=8, mutation_rate=0.3)
    result = genetic_search(SPACE, evaluator, "score", settings=settings, seed=3)
    assert len(evaluator.batches) <= 8  # a generation of already-seen sets needs no batch
    assert result.generations == sorted(result.generations)  # elitism: never gets worse
    assert result.best.params["y"] == "b" and abs(result.best.params["x"] - 17) <= 2
    seen = [tuple(sorted(p.items())) for batch in evaluator.batches for p in batch]
    assert len(seen) == len(set(seen))  # nothing evaluated twice
    again = genetic_search(SPACE, CountingEvaluator(), "score", settings=settings, seed=3)
    assert [t.params for t in again.trials] == [t.params for t in result.trials]


def test_objective_can_be_a_callable_and_bad_inputs_are_refused() -> None:
    result = search("grid", {"x": [1, 2, 3], "y": ["a"]}, sequential(peak), lambda m: -m["score"])
    assert result.best.params["x"] == 1
    with pytest.raises(BacktestConfigError):
        search("annealing", SPACE, sequential(peak))
    with pytest.raises(BacktestConfigError):
        grid_search({"x": [1]}, sequential(peak), constraint=lambda p: False)
    with pytest.raises(BacktestConfigError):
        grid_search({"x": [1], "y": ["a"]}, lambda batch: [], "score")


def test_sweep_of_the_real_strategy_through_the_local_evaluator() -> None:
    data = prepare_bars(walk_frame(1200))
    cfg = BacktestConfig(taker_fee_bps=D(10))
    space = {"fast": [3, 5], "slow": [10, 20]}
    result = grid_search(space, local_evaluator("sma_cross", data, cfg), "sharpe")
    best = result.best.params
    assert result.best.score == evaluate_params("sma_cross", data, best, cfg)["sharpe"]
    event = evaluate_params("sma_cross", data, best, cfg, engine="event")
    assert event["sharpe"] == pytest.approx(result.best.score, rel=1e-6)
    assert len(result.sharpes()) == 4


def test_walk_forward_windows_rolling_and_anchored() -> None:
    rolling = walk_forward_windows(100, train=40, test=20)
    assert [(w.train_start, w.train_stop, w.test_start, w.test_stop) for w in rolling] == [
        (0, 40, 40, 60),
        (20, 60, 60, 80),
        (40, 80, 80, 100),
    ]
    anchored = walk_forward_windows(100, train=40, test=30, step=30, anchored=True)
    assert [(w.train_start, w.train_stop, w.test_stop) for w in anchored] == [
        (0, 40, 70),
        (0, 70, 100),
    ]
    with pytest.raises(BacktestConfigError):
        walk_forward_windows(10, train=8, test=5)


def test_stitch_compounds_segments_that_each_start_from_the_initial_capital() -> None:
    ix = pd.date_range("2024-01-01", periods=4, freq="min", tz="UTC")
    a = pd.Series([110.0, 121.0], index=ix[:2])
    b = pd.Series([90.0, 99.0], index=ix[2:])
    np.testing.assert_allclose(stitch([a, b], 100.0).to_numpy(), [110, 121, 108.9, 119.79])


def test_walk_forward_optimises_in_sample_and_stitches_out_of_sample() -> None:
    data = prepare_bars(walk_frame(1500, seed=9))
    cfg = BacktestConfig(taker_fee_bps=D(10))
    space = {"fast": [3, 5, 8], "slow": [15, 30]}
    calls: list[int] = []

    def factory(train_data):
        calls.append(len(train_data))
        return local_evaluator("sma_cross", train_data, cfg)

    result = walk_forward(
        "sma_cross", data, space, cfg, train=600, test=300, evaluator_factory=factory
    )
    assert calls == [600, 600, 600]
    path = result.params_path()
    assert list(path.columns[:3]) == ["test_start", "fast", "slow"] and len(path) == 3
    assert len(result.equity) == 900
    assert result.equity.index[0] == pd.Timestamp(data.ts[600], tz="UTC")
    assert result.metrics["final_equity"] == pytest.approx(result.equity.iloc[-1])
    event = walk_forward("sma_cross", data, space, cfg, train=600, test=300, engine="event")
    assert list(event.params_path()["fast"]) == list(path["fast"])
