"""The ``pairs`` strategy trades both legs in the real-time engine; its books agree."""

from __future__ import annotations

import pytest

from tests.runtime_harness import db, running, until
from tests.trading.books import assert_books_agree
from trading.models import Order

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]

PAIR = ["BTC-USD", "ETH-USD"]
# A short lookback and a low entry band so the live seconds of the test cross it; stop_pvalue 1
# keeps the pair "cointegrated" so the break-stop does not hold the strategy flat.
PARAMS = {
    "symbol_a": "BTC-USD",
    "symbol_b": "ETH-USD",
    "lookback": 30,
    "coint_window": 60,
    "check_every": 10,
    "entry": 0.5,
    "exit": 0.1,
    "stop_pvalue": 1.0,
    "fraction": 0.1,
}


def filled_symbols() -> set[str]:
    """Return the symbols with a filled ``pairs`` order stored."""
    return set(
        Order.objects.filter(strategy="pairs", status="filled").values_list(
            "symbol__name", flat=True
        )
    )


async def test_pairs_fills_both_legs_and_the_books_agree(paper):
    async with running(paper, strategy="pairs", params=PARAMS, symbols=PAIR) as runtime:
        await until(lambda: db(filled_symbols)(), "a pairs order is filled and stored")
        await until(
            lambda: db(lambda: filled_symbols() == set(PAIR))(), "both legs filled", timeout=20
        )
        assert runtime.summary.warmup_bars >= 30, "the strategy warmed up on past bars"
    signals = await db(
        lambda: set(Order.objects.filter(strategy="pairs").values_list("signal", flat=True))
    )()
    assert signals & {"pairs:long_spread", "pairs:short_spread"}, signals
    await db(assert_books_agree)(paper)
