"""``manage.py strategy new|list|check`` and ``backtest --lookahead-check``: templates that run,
and planted peeking strategies of each kind caught (shift(-1), a centred window, data read from
outside the frame, an event-style strategy reading ahead)."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backtesting.engine.lookahead import check_signal_recursive
from backtesting.models import BacktestRun
from backtesting.strategy_checks import TruncationReport
from tests.backtesting.engine.helpers import walk_frame
from tests.trading.test_user_strategies import SIGNAL_SMA
from trading.engine import user_strategies
from trading.engine.strategies import STRATEGIES, create_strategy, strategy_class

pytestmark = pytest.mark.django_db(transaction=True)

PEEKERS = {
    "ShiftBack": ('df["fast"] = df["close"].rolling(self.params["fast"]).mean()',
                  'df["fast"] = df["close"].shift(-1).rolling(self.params["fast"]).mean()'),
    "Centred": ('df["fast"] = df["close"].rolling(self.params["fast"]).mean()',
                'df["fast"] = df["close"].rolling(self.params["fast"], center=True).mean()'),
    "Outside": ('df["fast"] = df["close"].rolling(self.params["fast"]).mean()',
                'df["fast"] = FULL.iloc[:len(df)].rolling(self.params["fast"]).mean().values'),
}


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def folder(tmp_path):
    before = user_strategies.strategy_paths()
    user_strategies.set_strategy_paths([tmp_path])
    yield tmp_path
    user_strategies.set_strategy_paths(before)
    for key in [k for k in STRATEGIES if str(tmp_path) in k or k in {"MySignal", "MyEvent"}]:
        del STRATEGIES[key]


@pytest.mark.parametrize("name,kind", [("ShiftBack", "shift"), ("Centred", "centred"),
                                       ("Outside", "outside")])
def test_the_recursive_check_catches_each_planted_peeker(folder, name, kind):
    old, new = PEEKERS[name]
    text = SIGNAL_SMA.replace(old, new).replace("UserSma", name)
    if kind == "outside":  # the whole series, loaded by the strategy itself, read by position
        text = ("from tests.backtesting.engine.helpers import walk_frame\n"
                "FULL = walk_frame(600)['close']\n" + text)
    (folder / f"{name.lower()}.py").write_text(text)
    bars = walk_frame(600)
    report = check_signal_recursive(create_strategy(name), bars, n_points=5)
    assert not report.ok and "peeks ahead" in report.message()
    honest = SIGNAL_SMA.replace("UserSma", "Honest")
    (folder / "honest.py").write_text(honest)
    assert check_signal_recursive(create_strategy("Honest"), bars, n_points=5).ok


def test_new_templates_run_list_shows_them_and_check_passes(folder):
    out = run("strategy", "new", "MySignal", "--style", "signal", "--dir", str(folder))
    assert "my_signal.py" in out
    run("strategy", "new", "MyEvent", "--style", "event", "--dir", str(folder))
    with pytest.raises(CommandError, match="exists"):
        run("strategy", "new", "MyEvent", "--dir", str(folder))
    listing = json.loads(run("strategy", "list", "--json"))
    by_name = {row["name"]: row for row in listing["strategies"]}
    assert {"sma_cross", "MySignal", "MyEvent"} <= set(by_name)
    assert by_name["MySignal"]["style"] == "signal" and by_name["MyEvent"]["style"] == "event"
    assert "int 2..50 step 2" in by_name["MySignal"]["params"]["fast"]
    for name in ("MySignal", "MyEvent"):
        out = run("strategy", "check", name, "--days", "12", "--points", "3")
        assert "no look-ahead found" in out and "orders" in out
        assert "FAIL" not in out
    assert "(recursive)" in run("strategy", "check", "MySignal", "--days", "12",
                                "--points", "2")


EVENT_PEEKER = '''
from decimal import Decimal
from trading.engine.strategy import Strategy


class Peeker(Strategy):
    """Precomputes over the whole frame it was built with: buys before every rise."""

    def __init__(self, frame=None, **params):
        super().__init__(**params)
        rises = frame["close"].shift(-1) > frame["close"]
        self.rises = set(frame["ts"][rises])

    def on_bar(self, bar, ctx):
        if bar.ts in self.rises:
            ctx.buy(bar.symbol, Decimal("0.001"))
'''


def test_backtest_lookahead_check_refuses_a_peeking_strategy_and_keeps_nothing(folder):
    (folder / "peek.py").write_text(SIGNAL_SMA.replace(*PEEKERS["ShiftBack"]).replace(
        "UserSma", "ShiftBack"))
    base = ["--symbols", "BTC-USD", "--timeframe", "1h", "--start", "2024-01-01",
            "--end", "2024-01-15", "--source", "sim"]
    with pytest.raises(CommandError, match="look-ahead found: ShiftBack.*peeks ahead"):
        run("backtest", "--strategy", "ShiftBack", "--lookahead-check", *base)
    assert not BacktestRun.objects.exists()
    (folder / "honest.py").write_text(SIGNAL_SMA)
    out = run("backtest", "--strategy", "UserSma", "--lookahead-check", *base)
    assert out.count("no look-ahead found") == 2
    assert BacktestRun.objects.get().status == "completed"


def test_the_truncation_check_catches_an_event_style_peeker(folder):
    from backtesting.engine.lookahead import check_strategy_lookahead

    (folder / "peeker.py").write_text(EVENT_PEEKER)
    cls = strategy_class("Peeker")
    report = check_strategy_lookahead(lambda frame: cls(frame=frame), walk_frame(400),
                                      n_points=4)
    assert not report.ok
    readable = TruncationReport("Peeker (truncation)", report.cuts, report.divergences).message()
    first = report.divergences[0]
    assert first.full is not None and first.truncated is None  # an order only the full run sent
    assert readable.startswith(f"Peeker (truncation) peeks ahead: cut after {first.cut:%Y-%m-%d}")
    assert f"is buy 0.001 BTC-USD market on {first.full[0].isoformat()} with every bar but no " \
           "order with the bars up to the cut" in readable  # fmt: skip
    assert "Decimal(" not in readable and "datetime." not in readable


def test_a_failed_check_prints_column_bar_and_values(folder):
    (folder / "peek.py").write_text(SIGNAL_SMA.replace(*PEEKERS["ShiftBack"]).replace(
        "UserSma", "ShiftBack"))  # fmt: skip
    out = StringIO()
    with pytest.raises(CommandError, match="ShiftBack: look-ahead found"):
        call_command("strategy", "check", "ShiftBack", "--days", "12", "--points", "3",
                     stdout=out, stderr=StringIO())  # fmt: skip
    fail = [line for line in out.getvalue().splitlines() if line.startswith("FAIL")]
    assert len(fail) == 1, out.getvalue()
    assert re.fullmatch(
        r"FAIL  ShiftBack \(recursive\) peeks ahead: column 'fast' at bar \d+ \(\S+\+00:00\) is "
        r"\d+\.\d+ from the whole frame, nan from the 250 bars up to it alone "
        r"\(\d of 3 bars checked differ\)",
        fail[0],
    ), fail[0]
