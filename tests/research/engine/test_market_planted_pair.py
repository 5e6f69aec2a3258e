"""A cointegrated pair planted in the simulated market is found by the pair scan; others not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from marketdata.engine.errors import SimulationConfigError
from marketdata.engine.sim_model import CointegratedPair
from marketdata.engine.simulator import SimulatedMarket
from research.engine.statarb import engle_granger, scan_pairs
from research.engine.studies import pairs_study

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD", "AVAX-USD"]
PLANTED = CointegratedPair("ETH-USD", "BTC-USD", beta=1.2, half_life=12 * 3600, spread_sigma=0.02)
START = datetime(2024, 1, 1, tzinfo=UTC)


def closes(market: SimulatedMarket, hours: int = 2000) -> pd.DataFrame:
    """Return hourly closes, one column per symbol."""
    bars = market.history_bars(SYMBOLS, "1h", START, START + timedelta(hours=hours))
    return bars.pivot(index="ts", columns="symbol", values="close")[SYMBOLS]


def test_the_pair_scan_finds_the_planted_pair_and_nothing_else():
    found = scan_pairs(closes(SimulatedMarket(SYMBOLS, seed=4, cointegrated=[PLANTED])))
    significant = [r for r in found if r.p_adjusted < 0.01]
    assert [{r.y, r.x} for r in significant] == [{"ETH-USD", "BTC-USD"}], found[:3]
    best = significant[0]
    # The hedge ratio recovers beta (ETH on BTC, or its inverse for BTC on ETH).
    ratio = best.hedge_ratio if best.y == "ETH-USD" else 1 / best.hedge_ratio
    assert ratio == pytest.approx(1.2, rel=0.1)


def test_the_pairs_study_finds_and_confirms_the_planted_pair_out_of_sample():
    study = pairs_study(closes(SimulatedMarket(SYMBOLS, seed=4, cointegrated=[PLANTED])))
    significant = [f for f in study.findings if f.significant and f.title.startswith("pairs")]
    titles = [f.title for f in significant]
    assert titles in (["pairs ETH-USD/BTC-USD, z 2.0/0.5"], ["pairs BTC-USD/ETH-USD, z 2.0/0.5"])
    assert significant[0].p_value < 0.01 and significant[0].details["holdout_confirmed"]
    assert study.summary["significant"] == 1 and study.summary["pairs"] == 6


def test_without_planting_the_same_market_has_no_cointegrated_pair():
    found = scan_pairs(closes(SimulatedMarket(SYMBOLS, seed=4)))
    assert all(r.p_adjusted >= 0.01 for r in found), found[:2]


def test_any_window_gives_the_same_planted_bars():
    market = SimulatedMarket(SYMBOLS, seed=4, cointegrated=[PLANTED])
    whole = closes(market, 6000)
    part = market.history_bars(
        SYMBOLS, "1h", START + timedelta(hours=4500), START + timedelta(hours=4600)
    ).pivot(index="ts", columns="symbol", values="close")[SYMBOLS]
    pd.testing.assert_frame_equal(part, whole.loc[part.index])


def test_the_live_stream_plants_the_same_pair():
    pair = CointegratedPair("ETH-USD", "BTC-USD", half_life=60, spread_sigma=0.005)
    market = SimulatedMarket(["BTC-USD", "ETH-USD"], seed=2, cointegrated=[pair])
    mids: dict[str, list[float]] = {"BTC-USD": [], "ETH-USD": []}
    for event in market.events(3000):
        if type(event).__name__ == "Quote":
            mids[event.symbol].append(float(event.bid + event.ask) / 2)
    btc, eth = np.array(mids["BTC-USD"]), np.array(mids["ETH-USD"])
    assert engle_granger(eth, btc, lags=1).p_value < 0.01
    spread = np.log(eth / 3000) - np.log(btc / 50000)  # beta 1 from the base prices
    assert abs(spread).max() < 8 * 0.005


@pytest.mark.parametrize(
    "pair,message",
    [
        (CointegratedPair("XRP-USD", "BTC-USD"), "not simulated"),
        (CointegratedPair("BTC-USD", "BTC-USD"), "leader"),
        (CointegratedPair("ETH-USD", "BTC-USD", beta=0), "> 0"),
    ],
)
def test_a_pair_that_cannot_be_planted_is_refused(pair, message):
    with pytest.raises(SimulationConfigError, match=message):
        SimulatedMarket(["BTC-USD", "ETH-USD"], cointegrated=[pair])
