"""Live and backfill inference from a saved artifact.

``Predictor.predict(bar)`` keeps, per symbol, the online feature state and a ring buffer of the
last ``window`` scaled feature rows, and runs the network on one preallocated (1, window, F)
tensor under ``torch.inference_mode``. It returns None until the symbol has ``warmup + window``
bars. ``predict_batch(df)`` gives the same predictions for a whole frame at once (backfills,
backtests) through ``training.predict_windows``, the batched path evaluation uses too; it does not
touch the live per-symbol state.

Bars flagged ``amended`` (a late trade changed an already-closed bar) are not applied: online
indicator state cannot be rewound, so they are counted in ``amended_skipped`` and return None.

The output is ``ModelPrediction`` (it carries the feature vector, which trading's
``Prediction`` does not); ``to_predictions()`` converts it to ``trading.engine.strategy
.Prediction`` objects for ``Strategy.on_prediction``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import torch

from marketdata.engine.events import Bar
from models_ml.engine.datasets import SequenceWindows
from models_ml.engine.errors import FeatureError
from models_ml.engine.features_online import BarLike, OnlineFeatures
from models_ml.engine.registry import ModelArtifact, load_artifact
from models_ml.engine.training import predict_windows
from trading.engine.strategy import Prediction, PredictionKind


@dataclass(frozen=True, slots=True)
class ModelPrediction:
    """One model output: P(up over ``horizon`` bars), expected log return and the features used."""

    symbol: str
    ts: datetime
    value: float  # probability the close is higher after `horizon` bars
    expected_return: float
    confidence: float  # |2p - 1|, in [0, 1]
    horizon: int
    model: str
    features: dict[str, float] = field(default_factory=dict)
    kind: PredictionKind = PredictionKind.DIRECTION

    def to_predictions(self) -> tuple[Prediction, Prediction]:
        """Return the direction and return predictions as trading-engine ``Prediction``s."""
        horizon = f"{self.horizon} bars"
        common = {"symbol": self.symbol, "ts": self.ts, "model": self.model, "horizon": horizon}
        return (
            Prediction(
                kind=PredictionKind.DIRECTION,
                value=self.value,
                confidence=self.confidence,
                **common,
            ),
            Prediction(
                kind=PredictionKind.RETURN,
                value=self.expected_return,
                confidence=self.confidence,
                **common,
            ),
        )


class _SymbolState:
    """Online features plus the last ``window`` scaled rows of one symbol."""

    __slots__ = ("features", "filled", "next", "rows", "window")

    def __init__(self, online: OnlineFeatures, window: int, n_features: int) -> None:
        self.features = online
        self.window = window
        self.rows = np.zeros((2 * window, n_features), dtype=np.float32)  # written twice: no roll
        self.next = 0
        self.filled = 0

    def push(self, scaled: np.ndarray) -> np.ndarray | None:
        """Append a scaled row; return the full window (oldest first) once there is one."""
        i = self.next
        self.rows[i] = scaled
        self.rows[i + self.window] = scaled
        self.next = (i + 1) % self.window
        self.filled = min(self.filled + 1, self.window)
        if self.filled < self.window:
            return None
        return self.rows[self.next : self.next + self.window]


class Predictor:
    """Per-bar and batch predictions of one artifact, with per-symbol state."""

    def __init__(
        self, artifact: ModelArtifact, model_name: str = "", num_threads: int | None = 1
    ) -> None:
        if num_threads is not None:
            # Process-wide: one window is too small to split, and idle OpenMP workers spinning on
            # a busy machine push single-prediction p99 from <2 ms to tens of ms.
            torch.set_num_threads(num_threads)
        self.artifact = artifact
        self.spec = artifact.spec
        self.network = artifact.network.eval()
        self.model_name = model_name or str(self.spec.metadata.get("name", self.spec.kind))
        self._device = next(self.network.parameters()).device
        self._mean = self.spec.scaler.mean
        self._scale = self.spec.scaler.scale
        n = len(self.spec.feature_names)
        self._input = torch.zeros(
            (1, self.spec.window, n), dtype=torch.float32, device=self._device
        )
        self._states: dict[str, _SymbolState] = {}
        self.amended_skipped = 0

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        device: str = "cpu",
        model_name: str = "",
        num_threads: int | None = 1,
    ) -> Predictor:
        """Load a verified artifact and wrap it."""
        return cls(load_artifact(directory, device), model_name, num_threads)

    @property
    def warmup_bars(self) -> int:
        """Return how many bars a symbol needs before its first prediction."""
        return self.spec.feature_set.warmup + self.spec.window

    def reset(self, symbol: str | None = None) -> None:
        """Forget the state of one symbol (or of all)."""
        if symbol is None:
            self._states.clear()
        else:
            self._states.pop(symbol, None)

    def _state(self, symbol: str) -> _SymbolState:
        """Return (creating) the state of a symbol."""
        state = self._states.get(symbol)
        if state is None:
            online = self.spec.feature_set.online()
            state = _SymbolState(online, self.spec.window, len(self.spec.feature_names))
            self._states[symbol] = state
        return state

    def predict(self, bar: BarLike, symbol: str | None = None) -> ModelPrediction | None:
        """Update the bar's symbol and return its prediction (None during warm-up)."""
        symbol = symbol or _symbol_of(bar)
        if getattr(bar, "amended", False) or (isinstance(bar, Mapping) and bar.get("amended")):
            self.amended_skipped += 1
            return None
        if not isinstance(_ts_of(bar), datetime):
            raise FeatureError(f"{symbol}: bar has no datetime ts")
        state = self._state(symbol)
        row = state.features.update_array(bar)
        if row is None:
            return None
        window = state.push(((row - self._mean) / self._scale).astype(np.float32))
        if window is None:
            return None
        self._input[0].copy_(torch.from_numpy(window))
        prob, ret = self._forward(self._input)
        return self._output(symbol, state.features.last_ts, float(prob[0]), float(ret[0]), row)

    def prime(self, symbol: str, bars: pd.DataFrame) -> None:
        """Feed history bars to a symbol's state without running the network."""
        state = self._state(symbol)
        for ts, values in zip(bars.index, bars.to_dict("records"), strict=True):
            row = state.features.update_array({"ts": ts, **values})
            if row is not None:
                state.push(((row - self._mean) / self._scale).astype(np.float32))

    def _forward(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Return (probability, expected log return) arrays for a batch of windows."""
        with torch.inference_mode():
            logit, ret = self.network(x)
            prob = torch.sigmoid(logit)
        return prob.cpu().numpy().astype(float), ret.cpu().numpy().astype(
            float
        ) * self.spec.return_scale

    def _output(
        self, symbol: str, ts: Any, prob: float, ret: float, row: np.ndarray
    ) -> ModelPrediction:
        """Build the prediction record."""
        return ModelPrediction(
            symbol=symbol,
            ts=ts,
            value=prob,
            expected_return=ret,
            confidence=abs(2.0 * prob - 1.0),
            horizon=self.spec.horizon,
            model=self.model_name,
            features=dict(zip(self.spec.feature_names, row.tolist(), strict=True)),
        )

    def predict_batch(self, bars: pd.DataFrame, symbol: str | None = None) -> pd.DataFrame:
        """Return predictions for every bar with a full window, indexed by ts.

        Columns: symbol, probability, expected_return, confidence. A ``symbol`` column splits a
        long frame into per-symbol series. Live per-symbol state is neither used nor changed.
        """
        if "symbol" in bars.columns and symbol is None:
            groups = bars.groupby("symbol", sort=True)
            parts = [self.predict_batch(g.drop(columns="symbol"), str(s)) for s, g in groups]
            return pd.concat(parts).sort_index(kind="stable") if parts else _empty_frame()
        if not isinstance(bars.index, pd.DatetimeIndex) and "ts" in bars.columns:
            bars = bars.set_index("ts")
        features = self.spec.feature_set.compute(bars)
        scaled = self.spec.scaler.transform(features.to_numpy())
        complete = np.isfinite(scaled).all(axis=1)
        if not complete.any():
            return _empty_frame()
        ends = np.arange(int(np.argmax(complete)) + self.spec.window - 1, len(scaled))
        prob, ret = self._forward_windows(np.nan_to_num(scaled, nan=0.0), ends)
        out = pd.DataFrame(
            {
                "symbol": symbol or "",
                "probability": prob,
                "expected_return": ret,
                "confidence": np.abs(2.0 * prob - 1.0),
            },
            index=features.index[ends],
        )
        out.index.name = "ts"
        return out

    def _forward_windows(
        self, scaled: np.ndarray, ends: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (probability, expected return) for the windows ending at ``ends``."""
        windows = SequenceWindows(scaled, ends, self.spec.window)
        prob, ret = predict_windows(self.network, windows, np.arange(len(ends)))
        return prob, ret * self.spec.return_scale


def _symbol_of(bar: BarLike) -> str:
    """Return the symbol of a Bar or mapping."""
    symbol = bar.symbol if isinstance(bar, Bar) else bar.get("symbol")
    if not symbol:
        raise FeatureError("bar has no symbol; pass symbol=")
    return str(symbol)


def _ts_of(bar: BarLike) -> Any:
    """Return the ts of a Bar, a mapping with "ts" or a pandas row named by its ts."""
    return bar.ts if isinstance(bar, Bar) else bar.get("ts", getattr(bar, "name", None))


def _empty_frame() -> pd.DataFrame:
    """Return an empty prediction frame."""
    frame = pd.DataFrame(columns=["symbol", "probability", "expected_return", "confidence"])
    frame.index = pd.DatetimeIndex([], tz="UTC", name="ts")
    return frame
