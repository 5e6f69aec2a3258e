"""Live inference with the inputs a model was trained on beyond price (sentiment, on-chain).

``runtrader`` wraps a loaded ``Predictor`` whose features use sentiment or on-chain inputs:
``refresh`` (on the runtime's database thread, every control poll) reads the latest stored
readings and finished on-chain intervals; ``predict`` (on the event loop, no database) joins
them to each closed bar as of its close, exactly as ``marketdata.feature_inputs`` does for
training, so a value stamped after the close is never used. Book (spread) and trade-flow inputs
come from the quotes and trades the engine itself sees (``observe``): the latest quote at or
before the close, and the buy/sell volume of trades inside the bar's window, as training reads
them from the stored quotes and trades.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from marketdata.engine.events import TIMEFRAME_SECONDS, Bar, Quote, Trade
from marketdata.engine.pointintime import asof_values
from marketdata.feature_inputs import CHAINS, feature_inputs_frame

logger = logging.getLogger(__name__)

# Data group -> the feature engine's extras it feeds. Sentiment and on-chain come from the
# database (control poll); book/spread from the quotes and flow from the trades the engine sees.
LIVE_GROUPS = {
    "sentiment": ("sentiment",),
    "onchain": ("onchain",),
    "book": ("book", "spread"),
    "flow": ("flow",),
}
KEEP = 32  # recent observations kept per column (a bar's close is always near the latest)
QUOTES_KEPT = 4096  # quotes held for the as-of join at a bar's close


def with_live_inputs(predictor: Any, *, symbol: str, timeframe: str) -> Any:
    """Return ``predictor`` wrapped when its features need stored inputs, else unchanged."""
    extras = set(predictor.spec.feature_set.extras)
    groups = [g for g, needs in LIVE_GROUPS.items() if extras.intersection(needs)]
    if not groups:
        return predictor
    return LiveInputsPredictor(predictor, symbol=symbol, timeframe=timeframe, groups=groups)


class LiveInputsPredictor:
    """A Predictor whose bars carry their point-in-time sentiment and on-chain inputs."""

    def __init__(self, predictor: Any, *, symbol: str, timeframe: str, groups: list[str]) -> None:
        self.inner = predictor
        self.symbol = symbol
        self.timeframe = timeframe
        self.groups = groups
        self._length = timedelta(seconds=TIMEFRAME_SECONDS[timeframe])
        # column -> (known-at ns, values), both sorted by time
        self._known: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._quotes: deque[tuple[int, float, float, float, float]] = deque(maxlen=QUOTES_KEPT)
        self._flow: dict[int, list[float]] = {}  # window start (ns) -> [buy, sell]
        self._step_ns = int(self._length.total_seconds() * 1e9)

    def observe(self, event: object) -> None:
        """Keep the quotes and the trades' buy/sell volume per bar window (event loop)."""
        if isinstance(event, Quote) and "book" in self.groups:
            row = (
                pd.Timestamp(event.ts).value,
                event.bid,
                event.ask,
                event.bid_size,
                event.ask_size,
            )
            self._quotes.append(row)
        elif isinstance(event, Trade) and "flow" in self.groups and event.side:
            ts = pd.Timestamp(event.ts).value
            start = ts - ts % self._step_ns
            sides = self._flow.get(start)
            if sides is None:
                sides = self._flow[start] = [0.0, 0.0]
                for old in [k for k in self._flow if k < start - 8 * self._step_ns]:
                    del self._flow[old]
            sides[0 if event.side == "buy" else 1] += event.size

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def refresh(self, now: datetime) -> None:
        """Read the latest stored inputs (database thread)."""
        from marketdata.models import SentimentReading
        from marketdata.models_sources import OnchainMetric

        known: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if "sentiment" in self.groups:
            rows = list(
                SentimentReading.objects.filter(symbol__name=self.symbol, ts__lte=now)
                .order_by("-ts")
                .values_list("ts", "score")[:KEEP]
            )[::-1]
            known["sentiment"] = _series(rows)
        chain = CHAINS.get(self.symbol.split("-")[0].upper())
        if "onchain" in self.groups and chain is not None:
            rows = list(
                OnchainMetric.objects.filter(chain=chain, ts__lte=now)
                .order_by("-ts")
                .values_list(
                    "ts", "timeframe", "tx_count", "volume", "exchange_inflow", "exchange_outflow"
                )[:KEEP]
            )[::-1]
            ends = [ts + timedelta(seconds=TIMEFRAME_SECONDS[tf]) for ts, tf, *_ in rows]
            known["onchain_tx_count"] = _series(list(zip(ends, [r[2] for r in rows], strict=True)))
            known["onchain_volume"] = _series(list(zip(ends, [r[3] for r in rows], strict=True)))
            known["onchain_netflow"] = _series(
                list(zip(ends, [r[4] - r[5] for r in rows], strict=True))
            )
        self._known = known

    def inputs_at(self, close: datetime) -> dict[str, float]:
        """Return each input's latest value known at ``close`` (NaN when none)."""
        moment = np.array([pd.Timestamp(close).value], dtype=np.int64)
        return {
            column: float(asof_values(moment, times, values)[0])
            for column, (times, values) in self._known.items()
        }

    def stream_inputs(self, bar: Bar) -> dict[str, float]:
        """Return the book inputs as of the bar's close and the bar's own buy/sell volume."""
        out: dict[str, float] = {}
        if "book" in self.groups:
            close = pd.Timestamp(bar.ts + self._length).value
            latest = next((q for q in reversed(self._quotes) if q[0] <= close), None)
            names = ("bid", "ask", "bid_size", "ask_size")
            out.update(
                dict.fromkeys(names, float("nan"))
                if latest is None
                else dict(zip(names, latest[1:], strict=True))
            )
        if "flow" in self.groups:
            buy, sell = self._flow.get(pd.Timestamp(bar.ts).value, (0.0, 0.0))
            out.update(buy_volume=buy, sell_volume=sell)
        return out

    def predict(self, bar: Bar, symbol: str | None = None):
        """Predict from ``bar`` plus its inputs as of the bar's close."""
        row = {
            "ts": bar.ts,
            "symbol": bar.symbol,
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
            "vwap": bar.vwap,
            "amended": bar.amended,
            **self.inputs_at(bar.ts + self._length),
            **self.stream_inputs(bar),
        }
        return self.inner.predict(row, symbol or bar.symbol)

    def prime(self, symbol: str, bars: pd.DataFrame) -> None:
        """Prime with history joined to its stored inputs (database thread)."""
        inputs = feature_inputs_frame(
            symbol=symbol, timeframe=self.timeframe, index=bars.index, groups=self.groups
        )
        self.inner.prime(symbol, bars.join(inputs))


def _series(rows: list) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.array([], dtype=np.int64), np.array([])
    times = np.array([pd.Timestamp(ts).value for ts, _ in rows], dtype=np.int64)
    return times, np.array([float(v) for _, v in rows])
