"""The ``tradingview_signal`` strategy and ``StrategyRunner.on_signal`` (no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.trading.engine.helpers import SYM, T0
from tests.trading.engine.test_strategies import bars_from, setup
from trading.engine.signals import Signal
from trading.engine.strategies import create_strategy

D = Decimal


def signal(action: str, size: str | None, minutes: int) -> Signal:
    return Signal(
        symbol=SYM,
        ts=T0 + timedelta(minutes=minutes),
        action=action,
        price=D("100"),
        position_size=None if size is None else D(size),
    )


@pytest.mark.parametrize(
    ("allow_short", "steps", "expected"),
    [
        (False, [("buy", "1")], [1]),
        (False, [("buy", "1"), ("sell", "0")], [1, 0]),
        (False, [("buy", None), ("sell", None)], [1, 0]),  # no position size: sell means flat
        (False, [("sell", "-2")], [0]),  # shorts refused unless allowed
        (True, [("sell", "-2"), ("buy", "0")], [-1, 0]),
        (True, [("sell", None)], [-1]),
        (False, [("buy", "1"), ("buy", "1")], [1, 1]),  # a repeat changes nothing
    ],
)
def test_signals_move_the_position(allow_short, steps, expected) -> None:
    strategy = create_strategy("tradingview_signal", allow_short=allow_short)
    runner, portfolio, _ = setup(strategy, cash="100000")
    for bar in bars_from([100.0] * 3):  # a price and a book to trade against
        runner.on_bar(bar)
    signs = []
    for i, (action, size) in enumerate(steps):
        runner.on_signal(signal(action, size, 3 + i))
        # The next bar fills what the signal asked for.
        runner.on_bar(replace(bars_from([100.0])[0], ts=T0 + timedelta(minutes=4 + i)))
        position = portfolio.position(SYM)
        held = position.quantity if position else D(0)
        signs.append((held > 0) - (held < 0))
    assert signs == expected
    assert runner.takes_signals()


def test_strategies_without_on_signal_do_not_take_signals() -> None:
    runner, _, _ = setup(create_strategy("sma_cross"))
    assert not runner.takes_signals()
