"""``strategy check`` tests rows past the live window, where reading data from outside shows.

The recursive check recomputes each checked row on the ``live_window`` bars up to it. With the
command's 480 default bars and the default window of 500, every row was recomputed from the
first bar, numbered as in the whole frame, so a strategy reading a series it kept itself by
position (the "outside" peeker of issue #14) passed ``strategy check``.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backtesting.engine.lookahead import check_signal_recursive
from tests.backtesting.engine.helpers import walk_frame
from trading.engine import user_strategies
from trading.engine.strategies import STRATEGIES, create_strategy

pytestmark = pytest.mark.django_db

# Keeps the longest frame it was ever given (the whole series) and reads the next close from it
# by position: the next bar's close, known before that bar.
OUTSIDE = """
import numpy as np

from trading.engine.signal_strategy import SignalStrategy

SEEN = {"closes": np.array([])}


class Outside(SignalStrategy):
    def indicators(self, df):
        if len(df) > len(SEEN["closes"]):
            SEEN["closes"] = df["close"].to_numpy().copy()
        ahead = np.append(SEEN["closes"][1 : len(df) + 1], [np.nan] * len(df))[: len(df)]
        df["ahead"] = ahead
        return df

    def entries(self, df):
        df["enter_long"] = df["ahead"] > df["close"]
        return df

    def exits(self, df):
        df["exit_long"] = df["ahead"] < df["close"]
        return df
"""


@pytest.fixture
def folder(tmp_path):
    before = user_strategies.strategy_paths()
    user_strategies.set_strategy_paths([tmp_path])
    (tmp_path / "outside.py").write_text(OUTSIDE)
    yield tmp_path
    user_strategies.set_strategy_paths(before)
    for key in [k for k in list(STRATEGIES) if k == "Outside" or str(tmp_path) in k]:
        del STRATEGIES[key]


def test_strategy_check_catches_a_strategy_reading_its_own_copy_by_position(folder) -> None:
    out = StringIO()
    with pytest.raises(CommandError, match="Outside: look-ahead found"):
        call_command("strategy", "check", "Outside", stdout=out, stderr=StringIO())
    assert "FAIL  Outside (recursive) peeks ahead: column 'ahead'" in out.getvalue()


def test_the_recursive_check_cuts_past_the_window_when_it_can(folder) -> None:
    report = check_signal_recursive(create_strategy("Outside"), walk_frame(1200), n_points=5)
    assert not report.ok and len(report.divergences) == 5  # every cut, not a lucky few


def test_too_few_bars_for_the_window_are_said(folder) -> None:
    out = StringIO()  # neither check can see this peeker on these bars: the output says why
    call_command("strategy", "check", "Outside", "--days", "15", stdout=out, stderr=StringIO())
    assert "(only 360 bars, not more than live_window 500: every row was recomputed" in (
        out.getvalue()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--points", "0"], "--points must be 1..100, got 0"),
        (["--points", "-3"], "--points must be 1..100, got -3"),
        (["--days", "-5"], "--days must be 2..3660, got -5"),
        (["--days", "100000"], "--days must be 2..3660, got 100000"),
    ],
)
def test_bad_counts_are_refused_before_anything_runs(folder, args, message) -> None:
    # --points 0 ended in a traceback (BacktestConfigError), --days -5 ran 2 days silently and
    # --days 100000 ran for as long as it took.
    with pytest.raises(CommandError, match=message):
        call_command("strategy", "check", "Outside", *args, stdout=StringIO(), stderr=StringIO())
