"""A flow impact planted in the simulated market is recovered from its trades, quotes and books."""

from __future__ import annotations

import functools

import pandas as pd
import pytest

from marketdata.engine.errors import SimulationConfigError
from marketdata.engine.sim_model import FlowImpact
from marketdata.engine.simulator import SimulatedMarket
from research.engine import microstructure
from research.engine.studies import microstructure_study

PLANTED = 1.5  # USD of BTC mid per BTC of net aggressor flow


def frames(market: SimulatedMarket, steps: int) -> dict[str, pd.DataFrame]:
    """Return the market's trades, quotes and books (touch and 5-level depth) as frames."""
    trades, quotes, books = [], [], []
    for event in market.events(steps):
        kind = type(event).__name__
        if kind == "Trade":
            trades.append((event.ts, event.price, event.size, event.side.value))
        elif kind == "Quote":
            quotes.append((event.ts, event.bid, event.bid_size, event.ask, event.ask_size))
        elif kind == "BookSnapshot":
            bid, ask = event.bids[0], event.asks[0]
            depth = [sum(s for _, s in side[:5]) for side in (event.bids, event.asks)]
            books.append((event.ts, bid[0], bid[1], ask[0], ask[1], *depth))

    def frame(rows, columns):
        return pd.DataFrame(rows, columns=["ts", *columns]).set_index("ts")

    return {
        "trades": frame(trades, ["price", "size", "side"]),
        "quotes": frame(quotes, ["bid", "bid_size", "ask", "ask_size"]),
        "book": frame(books, ["bid", "bid_size", "ask", "ask_size", "bid_depth", "ask_depth"]),
    }


@functools.cache
def planted(seed: int, coefficient: float = PLANTED, hours: int = 6) -> dict[str, pd.DataFrame]:
    """Six simulated hours of one planted market (cached: read-only frames shared by tests)."""
    impacts = [FlowImpact("BTC-USD", coefficient)] if coefficient else []
    market = SimulatedMarket(["BTC-USD"], seed=seed, trades_per_step=2, impacts=impacts)
    return frames(market, hours * 3600)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kyle_lambda_recovers_the_planted_flow_impact_within_10_percent(seed):
    fit = microstructure.kyle_lambda(planted(seed)["trades"], interval="1min")
    assert fit.coefficient == pytest.approx(PLANTED, rel=0.1)
    assert fit.p_value < 1e-6


def test_the_study_measures_book_flow_and_every_statistic_per_hour():
    data = planted(2)
    study = microstructure_study(
        "BTC-USD", data["trades"], data["quotes"], book=data["book"], permutations=20
    )
    by_title = {f.title: f for f in study.findings}
    kyle = by_title["BTC-USD Kyle's lambda"]
    assert kyle.significant and kyle.effect_size == pytest.approx(PLANTED, rel=0.1)
    book_ofi = by_title["BTC-USD book order-flow imbalance impact"]
    assert book_ofi.significant and book_ofi.effect_size > 0
    assert "BTC-USD book depth imbalance -> next mid change" in by_title
    hours = study.summary["by_hour"]
    assert [h["hour"] for h in hours] == list(range(6))  # six hours from midnight UTC
    for column in (
        "kyle_lambda",
        "roll_spread",
        "realised_vol",
        "sign_acf1",
        "vpin",
        "effective_spread",
        "ofi_impact",
        "book_ofi_impact",
        "imbalance_impact",
    ):
        assert all(column in h for h in hours), column
    # Each hour alone still finds the planted impact, within 20 % on an hour's 60 intervals.
    assert all(h["kyle_lambda"] == pytest.approx(PLANTED, rel=0.2) for h in hours)


def test_without_planting_flow_carries_no_impact():
    fit = microstructure.kyle_lambda(planted(2, 0, hours=2)["trades"], interval="1min")
    assert abs(fit.coefficient) < 0.2 * PLANTED


@pytest.mark.parametrize(
    "impact,message",
    [
        (FlowImpact("XRP-USD", 1.0), "not simulated"),
        (FlowImpact("BTC-USD", 0.0), "> 0"),
        (FlowImpact("BTC-USD", float("nan")), "> 0"),
    ],
)
def test_an_impact_that_cannot_be_planted_is_refused(impact, message):
    with pytest.raises(SimulationConfigError, match=message):
        SimulatedMarket(["BTC-USD"], impacts=[impact])
