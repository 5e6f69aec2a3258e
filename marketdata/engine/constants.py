"""Constants of the market-data engine: default symbols, simulator model parameters.

The lead's ``bootstrap`` command imports ``DEFAULT_SYMBOLS`` to create the Symbol rows, so the
simulated market and the database always agree on what is traded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """Static description of a tradable pair and its simulated-market profile.

    ``daily_volume`` is in base-asset units per UTC day; ``spread_bps`` is the typical full
    bid/ask spread in calm markets; ``annual_vol`` is the annualised volatility of log returns.
    """

    symbol: str
    base_asset: str
    quote_asset: str
    base_price: float
    daily_volume: float
    tick_size: float
    lot_size: float
    spread_bps: float
    annual_vol: float


DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("BTC-USD", "BTC", "USD", 50_000.0, 1_000_000.0, 0.01, 0.00001, 1.0, 0.55),
    SymbolSpec("ETH-USD", "ETH", "USD", 3_000.0, 500_000.0, 0.01, 0.0001, 1.5, 0.70),
    SymbolSpec("SOL-USD", "SOL", "USD", 100.0, 100_000.0, 0.01, 0.001, 3.0, 0.90),
    SymbolSpec("MATIC-USD", "MATIC", "USD", 0.80, 50_000.0, 0.0001, 0.1, 5.0, 0.95),
    SymbolSpec("AVAX-USD", "AVAX", "USD", 35.0, 75_000.0, 0.01, 0.001, 4.0, 0.90),
)

DEFAULT_SYMBOLS_BY_NAME: dict[str, SymbolSpec] = {spec.symbol: spec for spec in DEFAULT_SYMBOLS}

# Pairwise return correlations of the default symbols (crypto majors move together, ~0.6-0.8).
DEFAULT_CORRELATIONS: dict[frozenset[str], float] = {
    frozenset({"BTC-USD", "ETH-USD"}): 0.80,
    frozenset({"BTC-USD", "SOL-USD"}): 0.70,
    frozenset({"BTC-USD", "MATIC-USD"}): 0.65,
    frozenset({"BTC-USD", "AVAX-USD"}): 0.68,
    frozenset({"ETH-USD", "SOL-USD"}): 0.72,
    frozenset({"ETH-USD", "MATIC-USD"}): 0.70,
    frozenset({"ETH-USD", "AVAX-USD"}): 0.70,
    frozenset({"SOL-USD", "MATIC-USD"}): 0.66,
    frozenset({"SOL-USD", "AVAX-USD"}): 0.72,
    frozenset({"MATIC-USD", "AVAX-USD"}): 0.68,
}
# Used for any pair involving a symbol outside the defaults.
FALLBACK_CORRELATION = 0.70

SECONDS_PER_YEAR = 365.0 * 86_400.0

# Volatility regimes: multipliers on each symbol's annual_vol, and the expected time spent in
# each regime before switching (seconds). Crypto spends most time calm with bursts of stress.
REGIME_VOL_MULTIPLIERS: tuple[float, float] = (0.8, 2.0)
REGIME_MEAN_DURATION_S: tuple[float, float] = (6 * 3600.0, 1.5 * 3600.0)
# Spreads widen and volume rises when volatility is high.
REGIME_SPREAD_MULTIPLIERS: tuple[float, float] = (1.0, 2.5)
REGIME_VOLUME_MULTIPLIERS: tuple[float, float] = (0.9, 1.6)

# Market-wide jumps: expected count per day and size in multiples of one-hour volatility.
JUMPS_PER_DAY = 2.0
JUMP_SIZE_HOURLY_SIGMAS = 1.5

# Sentiment: Ornstein-Uhlenbeck latent per symbol, mapped into [-1, 1] with tanh.
SENTIMENT_MEAN_REVERSION_PER_HOUR = 2.0
SENTIMENT_VOL_PER_SQRT_HOUR = 1.0

BOOK_LEVELS = 10
