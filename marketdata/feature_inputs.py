"""Reads: the non-price inputs of model features, joined to bars point-in-time.

For bars indexed by window start, each bar's decision time is its close. Joined as of that
time (``marketdata.engine.pointintime``), never later:

* ``sentiment``: the latest ``SentimentReading`` of the symbol stamped at or before the close;
* ``onchain``: the latest ``OnchainMetric`` interval of the symbol's chain that *ended* at or
  before the close (an interval is unknown until it is over);
* ``book``: the latest stored quote's bid/ask and sizes at or before the close;
* ``flow``: buy and sell volume of the stored trades inside the bar's own window.

Columns are those ``models_ml.engine.features.EXTRA_GROUPS`` expects; NaN means unknown (the
features forward-fill or neutralise it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import numpy as np
import pandas as pd

from marketdata.engine.events import TIMEFRAME_SECONDS
from marketdata.engine.pointintime import asof_values, window_sums
from marketdata.models import Quote, SentimentReading, TradeTick
from marketdata.models_sources import OnchainMetric

FEATURE_GROUPS = ("price", "sentiment", "onchain", "book", "flow")
# The extras groups of the feature engine each data group feeds.
GROUP_EXTRAS = {
    "price": (),
    "sentiment": ("sentiment",),
    "onchain": ("onchain",),
    "book": ("spread", "book"),
    "flow": ("flow",),
}
CHAINS = {"BTC": "btc", "WBTC": "btc", "ETH": "eth", "WETH": "eth"}


def parse_feature_groups(raw: str) -> list[str]:
    """Parse ``price,sentiment,...``; raise ValueError naming unknown groups."""
    groups = [g.strip().lower() for g in raw.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(FEATURE_GROUPS))
    if unknown or not groups:
        raise ValueError(
            f"unknown feature group(s) {', '.join(unknown) or '(none given)'}; "
            f"use {','.join(FEATURE_GROUPS)}"
        )
    return ["price", *[g for g in FEATURE_GROUPS if g in groups and g != "price"]]


def feature_inputs_frame(
    *, symbol: str, timeframe: str, index: pd.DatetimeIndex, groups: Iterable[str]
) -> pd.DataFrame:
    """Return the extra input columns of ``groups`` for bars starting at ``index``."""
    frame = pd.DataFrame(index=index)
    if len(index) == 0:
        return frame
    length = timedelta(seconds=TIMEFRAME_SECONDS[timeframe])
    starts = index.asi8.astype(np.int64) if index.tz is not None else index.asi8
    closes = starts + int(length.total_seconds() * 1e9)
    first, last = index[0].to_pydatetime(), index[-1].to_pydatetime() + length
    for group in groups:
        if group == "sentiment":
            frame["sentiment"] = _sentiment(symbol, closes, last)
        elif group == "onchain":
            for column, values in _onchain(symbol, closes, last).items():
                frame[column] = values
        elif group == "book":
            for column, values in _quotes(symbol, closes, first - length, last).items():
                frame[column] = values
        elif group == "flow":
            for column, values in _flow(symbol, starts, closes, first, last).items():
                frame[column] = values
    return frame


def _ns(series) -> np.ndarray:
    return pd.to_datetime(pd.Series(series), utc=True).astype("int64").to_numpy()


def _sentiment(symbol: str, closes: np.ndarray, until) -> np.ndarray:
    rows = list(
        SentimentReading.objects.filter(symbol__name=symbol, ts__lte=until)
        .order_by("ts")
        .values_list("ts", "score")
    )
    if not rows:
        return np.full(len(closes), np.nan)
    ts, score = zip(*rows, strict=True)
    return asof_values(closes, _ns(ts), np.array(score, dtype=float))


def _onchain(symbol: str, closes: np.ndarray, until) -> dict[str, np.ndarray]:
    chain = CHAINS.get(symbol.split("-")[0].upper())
    empty = {c: np.full(len(closes), np.nan) for c in _ONCHAIN_COLUMNS}
    if chain is None:
        return empty
    rows = list(
        OnchainMetric.objects.filter(chain=chain, ts__lte=until)
        .order_by("ts")
        .values_list("ts", "timeframe", "tx_count", "volume", "exchange_inflow", "exchange_outflow")
    )
    if not rows:
        return empty
    columns = (np.array(c, dtype=object) for c in zip(*rows, strict=True))
    ts, timeframe, count, volume, inflow, outflow = columns
    # Known only when the interval is over: its start plus its own length.
    ends = _ns(ts) + np.array([TIMEFRAME_SECONDS[t] for t in timeframe], dtype=np.int64) * 10**9
    net = inflow.astype(float) - outflow.astype(float)
    return {
        "onchain_tx_count": asof_values(closes, ends, count.astype(float)),
        "onchain_volume": asof_values(closes, ends, volume.astype(float)),
        "onchain_netflow": asof_values(closes, ends, net),
    }


_ONCHAIN_COLUMNS = ("onchain_tx_count", "onchain_volume", "onchain_netflow")


def _quotes(symbol: str, closes: np.ndarray, since, until) -> dict[str, np.ndarray]:
    rows = list(
        Quote.objects.filter(symbol__name=symbol, ts__gte=since, ts__lte=until)
        .order_by("ts")
        .values_list("ts", "bid", "ask", "bid_size", "ask_size")
    )
    columns = ("bid", "ask", "bid_size", "ask_size")
    if not rows:
        return {c: np.full(len(closes), np.nan) for c in columns}
    ts, *values = zip(*rows, strict=True)
    known = _ns(ts)
    return {
        c: asof_values(closes, known, np.array(v, dtype=float))
        for c, v in zip(columns, values, strict=True)
    }


def _flow(symbol: str, starts, closes, first, last) -> dict[str, np.ndarray]:
    rows = list(
        TradeTick.objects.filter(symbol__name=symbol, ts__gte=first, ts__lt=last)
        .exclude(side="")
        .values_list("ts", "size", "side")
    )
    if not rows:
        return {"buy_volume": np.zeros(len(starts)), "sell_volume": np.zeros(len(starts))}
    ts, size, side = zip(*rows, strict=True)
    known = _ns(ts)
    size = np.array(size, dtype=float)
    buy = np.array([s == "buy" for s in side])
    return {
        "buy_volume": window_sums(starts, closes, known, np.where(buy, size, 0.0)),
        "sell_volume": window_sums(starts, closes, known, np.where(buy, 0.0, size)),
    }
