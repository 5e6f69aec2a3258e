"""Names the market-data commands offer as choices, in a module that imports nothing heavy.

``manage.py ingest --help`` and ``backfill --help`` build their parsers from these; the modules
that implement the sources (aiohttp, numpy, psycopg underneath) load only when a command runs.
Each implementing module re-exports its names from here, so there is one definition.
"""

from __future__ import annotations

from datetime import timedelta

# Live feeds of ``ingest`` and ``runtrader`` (marketdata.feeds).
LIVE_SOURCES = ("sim", "polygon", "coinbase", "binance")
# Alternative data ``ingest`` polls (marketdata.alt_ingest).
ALT_INGEST_SOURCES = ("sentiment", "onchain:eth", "onchain:btc")
# History ``backfill`` downloads (marketdata.backfill); on-chain history is marketdata.onchain's.
BACKFILL_SOURCES = (
    "polygon",
    "ccxt:binance",
    "ccxt:coinbase",
    "ccxt:kraken",
    "csv",
    "tradingview",
    "sim",
)
# Live feeds: how far from the clock an event's timestamp may be (marketdata.pipeline).
DEFAULT_FUTURE_HORIZON = timedelta(minutes=5)
# Timeframes aggregated from the stream, and those resampled from them (marketdata.pipeline).
BASE_TIMEFRAMES = ("1s", "1m")
RESAMPLED_TIMEFRAMES = ("5m", "15m", "1h", "4h", "1d")
