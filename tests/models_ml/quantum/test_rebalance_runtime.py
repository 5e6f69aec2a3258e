"""The ``rebalance`` strategy trades to its weights in the real-time engine; its books agree."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.runtime_harness import db, running, until
from tests.trading.books import assert_books_agree
from trading.models import Order, Position

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]

SYMBOLS = ["BTC-USD", "ETH-USD"]


def held() -> dict[str, Decimal]:
    """Return the stored non-zero positions by symbol."""
    rows = Position.objects.exclude(quantity=0).values_list("symbol__name", "quantity")
    return dict(rows)


def filled_symbols() -> set[str]:
    """Return the symbols with a filled ``rebalance`` order stored."""
    return set(
        Order.objects.filter(strategy="rebalance", status="filled").values_list(
            "symbol__name", flat=True
        )
    )


async def test_rebalance_buys_its_weights_and_the_books_agree(paper):
    params = {"weights": "BTC-USD:0.6,ETH-USD:0.4", "every": 1, "fraction": 0.5}
    async with running(paper, strategy="rebalance", params=params, symbols=SYMBOLS):
        await until(lambda: db(lambda: filled_symbols() == set(SYMBOLS))(), "both legs filled")
    await db(assert_books_agree)(paper)
    positions = await db(held)()
    assert set(positions) == set(SYMBOLS) and all(q > 0 for q in positions.values()), positions


async def test_rebalance_reoptimises_live_and_trades_what_it_chose(paper):
    params = {
        "symbols": ",".join(SYMBOLS),
        "reoptimise_every": 5,
        "method": "exact",
        "k": 1,
        "lookback": 20,
        "every": 1,
        "fraction": 0.5,
    }
    async with running(paper, strategy="rebalance", params=params, symbols=SYMBOLS) as runtime:
        await until(lambda: db(filled_symbols)(), "an order the re-optimised weights asked for")
        strategy = runtime.runner._slots[0].strategy  # the instance the engine runs
        chosen = {s for s, w in strategy.targets.items() if w > 0}
    assert len(chosen) == 1, strategy.targets
    await db(assert_books_agree)(paper)
