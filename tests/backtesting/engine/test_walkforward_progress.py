"""Walk-forward reports its windows as it finishes them (the command's progress bar feed)."""

from __future__ import annotations

from backtesting.engine.optimize import walk_forward, walk_forward_windows
from backtesting.engine.runner import BacktestConfig
from tests.backtesting.engine.helpers import walk_frame


def test_walk_forward_reports_each_window_done_out_of_the_total() -> None:
    bars = walk_frame(900)
    seen: list[tuple[int, int]] = []
    result = walk_forward(
        "sma_cross", bars, {"fast": [3, 5], "slow": [20]}, BacktestConfig(),
        train=400, test=150, progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    total = len(walk_forward_windows(900, train=400, test=150))
    assert total == 3 and len(result.windows) == total
    assert seen == [(i, total) for i in range(total + 1)]
