"""Live inference with the inputs a model was trained on beyond price (sentiment, on-chain).

``runtrader`` wraps a loaded ``Predictor`` whose features use sentiment or on-chain inputs:
``refresh`` (on the runtime's database thread, every control poll) reads the latest stored
readings and finished on-chain intervals; ``predict`` (on the event loop, no database) joins
them to each closed bar as of its close, exactly as ``marketdata.feature_inputs`` does for
training, so a value stamped after the close is never used. Book and trade-flow inputs are not
fed live yet: a model using them is loaded with a warning and sees them as neutral.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from marketdata.engine.events import TIMEFRAME_SECONDS, Bar
from marketdata.engine.pointintime import asof_values
from marketdata.feature_inputs import CHAINS, feature_inputs_frame

logger = logging.getLogger(__name__)

LIVE_GROUPS = {"sentiment": ("sentiment",), "onchain": ("onchain",)}
NOT_LIVE = {"book", "spread", "flow"}
KEEP = 32  # recent observations kept per column (a bar's close is always near the latest)


def with_live_inputs(predictor: Any, *, symbol: str, timeframe: str) -> Any:
    """Return ``predictor`` wrapped when its features need stored inputs, else unchanged."""
    extras = set(predictor.spec.feature_set.extras)
    groups = [g for g, needs in LIVE_GROUPS.items() if extras.intersection(needs)]
    missing = sorted(extras & NOT_LIVE)
    if missing:
        logger.warning(
            "model inputs not fed live: they read as neutral",
            extra={"model": predictor.model_name, "inputs": missing},
        )
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
