"""Over 100 seeds the planted pair is always found and an independent pair rarely (at alpha)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from marketdata.engine.sim_model import CointegratedPair
from marketdata.engine.simulator import SimulatedMarket
from research.engine.statarb import engle_granger

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD"]
PLANTED = CointegratedPair("ETH-USD", "BTC-USD", beta=1.2, half_life=12 * 3600, spread_sigma=0.02)
START = datetime(2024, 1, 1, tzinfo=UTC)
SEEDS = 100


def p_values(seed: int) -> tuple[float, float]:
    """Return Engle-Granger p of the planted pair (ETH/BTC) and an independent one (SOL/BTC)."""
    market = SimulatedMarket(SYMBOLS, seed=seed, cointegrated=[PLANTED])
    bars = market.history_bars(SYMBOLS, "1h", START, START + timedelta(hours=2000))
    closes = bars.pivot(index="ts", columns="symbol", values="close")
    btc = closes["BTC-USD"].to_numpy()
    planted = engle_granger(closes["ETH-USD"].to_numpy(), btc, lags=1).p_value
    independent = engle_granger(closes["SOL-USD"].to_numpy(), btc, lags=1).p_value
    return planted, independent


def test_planted_found_every_time_and_false_positives_at_the_stated_rate():
    results = [p_values(seed) for seed in range(SEEDS)]
    assert all(planted < 0.01 for planted, _ in results)
    for alpha in (0.01, 0.05):
        hits = sum(independent < alpha for _, independent in results)
        # The measured rate's exact 95 % interval must contain alpha (a sound, honest test),
        # and the count must not be improbably high under H0 (one-sided binomial p > 0.01).
        low, high = proportion_confint(hits, SEEDS, alpha=0.05, method="beta")
        assert low <= alpha <= high, (alpha, hits)
        assert stats.binomtest(hits, SEEDS, alpha, alternative="greater").pvalue > 0.01
