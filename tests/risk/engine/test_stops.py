"""Stops: fixed, trailing, volatility and time exits, and the StopManager that enforces them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.engine.events import Bar
from risk.engine.errors import StopConfigError
from risk.engine.stops import (
    ExitIntent,
    FixedStop,
    StopManager,
    StopReason,
    TimeExit,
    TrailingStop,
    VolatilityStop,
)
from trading.engine.hooks import PositionView

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _bar(low: float, high: float, minute: int, symbol: str = "BTC-USD") -> Bar:
    return Bar(symbol, "1m", T0 + timedelta(minutes=minute), low, high, low, low, 1.0)


def test_fixed_stop_long_emits_once_until_rearmed() -> None:
    mgr = StopManager("acct")
    mgr.track("BTC-USD", D("2"), D("100"), T0, [FixedStop(price=D("95"))])
    assert mgr.on_price("BTC-USD", D("96"), T0) == []
    intents = mgr.on_price("BTC-USD", D("95"), T0 + timedelta(seconds=1))
    assert intents == [
        ExitIntent(
            "acct", "BTC-USD", "sell", D("2"), StopReason.FIXED, D("95"), T0 + timedelta(seconds=1)
        )
    ]
    assert mgr.on_price("BTC-USD", D("90"), T0) == []  # exit already requested
    mgr.rearm("BTC-USD")
    assert [i.reason for i in mgr.on_price("BTC-USD", D("90"), T0)] == [StopReason.FIXED]


def test_fixed_percent_stop_short() -> None:
    mgr = StopManager()
    mgr.track("ETH-USD", D("-3"), D("200"), T0, [FixedStop(percent=D("0.05"))])
    assert mgr.stop_level("ETH-USD") == D("210")
    assert mgr.on_price("ETH-USD", 209.99, T0) == []
    (intent,) = mgr.on_price("ETH-USD", 210.5, T0)
    assert (intent.side, intent.quantity, intent.trigger_price) == ("buy", D("3"), D("210"))


@pytest.mark.parametrize(
    ("rule", "qty", "path", "levels_after", "hit_at"),
    [
        # long, trail by 5: best 104 -> 99, 110 -> 105; 106 holds; 105 hits
        (TrailingStop(amount=D("5")), "1", ["104", "110", "106", "105"], ["99", "105", "105"], 3),
        # short, trail by 10 %: best 90 -> 99; 98 holds (best 90); 99 hits
        (TrailingStop(percent=D("0.1")), "-1", ["90", "98", "99"], ["99", "99"], 2),
        # long, 10 %: never falls back to the stop
        (TrailingStop(percent=D("0.1")), "1", ["100", "120", "109"], ["90", "108", "108"], None),
    ],
)
def test_trailing_stop_paths(
    rule: TrailingStop, qty: str, path: list[str], levels_after: list[str], hit_at: int | None
) -> None:
    mgr = StopManager()
    mgr.track("X", D(qty), D("100"), T0, [rule])
    for i, price in enumerate(path):
        intents = mgr.on_price("X", D(price), T0 + timedelta(minutes=i))
        if i == hit_at:
            assert [x.reason for x in intents] == [StopReason.TRAILING]
            return
        assert intents == []
        assert mgr.stop_level("X") == D(levels_after[i])
    assert hit_at is None


def test_bar_is_tested_against_stop_before_the_bar() -> None:
    mgr = StopManager()
    mgr.track("BTC-USD", D("1"), D("100"), T0, [TrailingStop(amount=D("5"))])
    # high 120 and low 96 in one bar: the low is tested against the old stop (95), not 115
    assert mgr.on_bar(_bar(96, 120, 1)) == []
    assert mgr.stop_level("BTC-USD") == D("115")
    (intent,) = mgr.on_bar(_bar(114, 118, 2))
    assert intent.trigger_price == D("115")
    assert intent.ts == T0 + timedelta(minutes=2)


def test_volatility_stop_fixed_atr_and_position_atr() -> None:
    mgr = StopManager()
    mgr.track("A", D("1"), D("100"), T0, [VolatilityStop(D("2"), atr=D("3"))])
    assert mgr.stop_level("A") == D("94")
    assert mgr.on_price("A", D("94.5"), T0) == []
    assert [i.reason for i in mgr.on_price("A", D("94"), T0)] == [StopReason.VOLATILITY]

    mgr.track("B", D("-1"), D("100"), T0, [VolatilityStop(D("2"), trailing=True)])
    assert mgr.stop_level("B") is None  # inactive until an ATR is known
    assert mgr.on_price("B", D("150"), T0) == []
    mgr.update_atr("B", 2.5)
    mgr.on_price("B", D("90"), T0)  # new low moves the anchor
    assert mgr.stop_level("B") == D("95")
    assert [i.side for i in mgr.on_price("B", D("95"), T0)] == ["buy"]


def test_time_exit() -> None:
    mgr = StopManager()
    mgr.track("A", D("1"), D("100"), T0, [TimeExit(timedelta(hours=1))])
    assert mgr.stop_level("A") is None
    assert mgr.on_price("A", D("100"), T0 + timedelta(minutes=59)) == []
    (intent,) = mgr.on_price("A", D("101"), T0 + timedelta(hours=1))
    assert (intent.reason, intent.trigger_price) == (StopReason.TIME, None)


def test_tightest_price_stop_wins_over_looser_and_time() -> None:
    rules = [FixedStop(price=D("95")), TrailingStop(percent=D("0.1")), TimeExit(timedelta(1))]
    mgr = StopManager()
    mgr.track("A", D("1"), D("100"), T0, rules)
    mgr.on_price("A", D("120"), T0)
    assert mgr.stop_level("A") == D("108")
    (intent,) = mgr.on_price("A", D("100"), T0 + timedelta(days=2))
    assert (intent.reason, intent.trigger_price) == (StopReason.TRAILING, D("108"))


def test_sync_applies_default_rules_to_positions_the_strategy_left_unprotected() -> None:
    mgr = StopManager("acct", default_rules=[FixedStop(percent=D("0.1"))])
    mgr.sync({"A": PositionView("A", D("2"), D("100"), D("100"))}, T0)
    assert mgr.stop_level("A") == D("90")
    # scale in: same side, new average -> quantity and entry follow
    mgr.sync({"A": PositionView("A", D("3"), D("110"), D("110"))}, T0)
    assert (mgr.positions["A"].quantity, mgr.stop_level("A")) == (D("3"), D("99"))
    # flip to short: restarted with the new entry and time
    mgr.sync({"A": PositionView("A", D("-1"), D("105"), D("105"))}, T0 + timedelta(1))
    pos = mgr.positions["A"]
    assert (pos.entry_ts, mgr.stop_level("A")) == (T0 + timedelta(1), D("115.5"))
    (intent,) = mgr.on_price("A", D("116"), T0)
    assert (intent.side, intent.quantity) == ("buy", D("1"))
    mgr.sync({"A": PositionView("A", D("0"), D("0"), D("116"))}, T0)
    assert "A" not in mgr.positions
    assert mgr.on_price("A", D("1"), T0) == []


@pytest.mark.parametrize(
    "build",
    [
        lambda: FixedStop(),
        lambda: FixedStop(price=D("1"), percent=D("0.1")),
        lambda: FixedStop(price=D("0")),
        lambda: TrailingStop(),
        lambda: TrailingStop(percent=D("1.5")),
        lambda: TrailingStop(amount=D("-1")),
        lambda: VolatilityStop(D("0")),
        lambda: VolatilityStop(D("1"), atr=D("0")),
        lambda: TimeExit(timedelta(0)),
    ],
)
def test_rule_validation(build: object) -> None:
    with pytest.raises(StopConfigError):
        build()  # type: ignore[operator]


def test_manager_errors() -> None:
    mgr = StopManager()
    with pytest.raises(StopConfigError):
        mgr.track("A", D("0"), D("100"), T0)
    with pytest.raises(StopConfigError):
        mgr.track("A", D("1"), D("0"), T0)
    with pytest.raises(StopConfigError):
        mgr.update_atr("missing", 1.0)
    with pytest.raises(StopConfigError):
        mgr.stop_level("missing")


@settings(max_examples=200, deadline=None)
@given(
    path=st.lists(st.decimals(min_value="50", max_value="150", places=2), min_size=1, max_size=40),
    long=st.booleans(),
)
def test_trailing_stop_only_ratchets_and_fires_on_first_cross(path: list[D], long: bool) -> None:
    mgr = StopManager()
    mgr.track("X", D("1") if long else D("-1"), D("100"), T0, [TrailingStop(amount=D("7"))])
    previous = mgr.stop_level("X")
    for price in path:
        crossed = price <= previous if long else price >= previous  # type: ignore[operator]
        intents = mgr.on_price("X", price, T0)
        assert bool(intents) == crossed
        if crossed:
            assert intents[0].trigger_price == previous
            break
        level = mgr.stop_level("X")
        assert (level >= previous) if long else (level <= previous)  # type: ignore[operator]
        previous = level
