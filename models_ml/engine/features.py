"""Model features from bars: TA-Lib indicators, microstructure and context, batch and online.

One definition serves history and live. Features fall in two families:

* finite memory (SMA ratios, Bollinger, OBV z-score, MFI, stochastic, CCI, ROC, Williams %R,
  lagged returns, realised volatility, volume z-score, bar shape and every optional extra): the
  value at bar t depends only on the trailing ``window_lookback + 1`` bars. ``window_features``
  computes them with TA-Lib and trailing-window numpy; the online object keeps a bounded ring
  buffer of that many bars and runs the *same function* on it, taking the last row.
* infinite memory (RSI, MACD line/signal/hist, ATR, EMA ratios, ADX and the +DI/-DI spread): these
  are recursive, so a bounded buffer cannot reproduce them. Batch mode calls TA-Lib on the whole
  series; the online object carries the recursion state forward with the step-by-step TA-Lib
  replicas of ``talib_state`` (tested equal to TA-Lib), and both feed ``recursive_features``.

This is option "exact recursion": computing every feature on a trailing window at each bar
would need O(bars x window) TA-Lib calls in batch mode (far too slow for 100k bars), and a
truncated buffer only approximates recursive indicators. Batch mode is plain vectorised TA-Lib
(~0.2 s for 100k bars); an online update costs ~0.2 ms.

Consequently a batch frame and an online stream agree at every timestamp when they start from the
same first bar (tested to 1e-9 relative). Recursive indicators started at different bars converge
geometrically (Wilder factor (n-1)/n per bar), which ``FeatureConfig.settle`` can absorb. TA-Lib's
global unstable-period/compatibility settings must stay at their defaults (checked).

Inputs: a DataFrame with open/high/low/close/volume indexed by UTC ts (or with a ``ts`` column);
optional extras — ``vwap``; ``bid``/``ask``; ``bid_size``/``ask_size``; ``buy_volume``/
``sell_volume``; ``sentiment``. Quote, book and sentiment inputs are forward-filled (they persist
until updated); any extra still missing maps to its neutral value (0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import talib

from models_ml.engine.errors import FeatureError
from models_ml.engine.rolling import (
    flat_to_zero,
    lag,
    rolling_rms,
    rolling_std,
    rolling_sum,
    rolling_zscore,
    safe_divide,
)

if TYPE_CHECKING:
    from models_ml.engine.features_online import OnlineFeatures

OHLCV = ("open", "high", "low", "close", "volume")
EXTRA_GROUPS: dict[str, tuple[str, ...]] = {
    "vwap": ("vwap",),
    "spread": ("bid", "ask"),
    "book": ("bid_size", "ask_size"),
    "flow": ("buy_volume", "sell_volume"),
    "sentiment": ("sentiment",),
    "onchain": ("onchain_tx_count", "onchain_volume", "onchain_netflow"),
}
FORWARD_FILLED = frozenset(
    {
        "bid",
        "ask",
        "bid_size",
        "ask_size",
        "sentiment",
        "onchain_tx_count",
        "onchain_volume",
        "onchain_netflow",
    }
)
_RECURSIVE_FUNCS = ("EMA", "RSI", "ATR", "ADX", "PLUS_DI", "MINUS_DI")


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """Indicator periods and windows (bars); defaults suit 1m-1h crypto bars."""

    rsi_period: int = 14
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    atr_period: int = 14
    adx_period: int = 14
    ma_lengths: tuple[int, ...] = (10, 20, 50)
    bb_period: int = 20
    bb_dev: float = 2.0
    obv_window: int = 20
    mfi_period: int = 14
    stoch_k: int = 14
    stoch_slow: int = 3
    stoch_d: int = 3
    cci_period: int = 20
    roc_period: int = 10
    willr_period: int = 14
    return_lags: int = 5
    return_horizons: tuple[int, ...] = (5, 20)
    vol_windows: tuple[int, ...] = (10, 30, 60)
    volume_window: int = 20
    spread_window: int = 20
    flow_window: int = 10
    sentiment_window: int = 10
    onchain_window: int = 24  # on-chain intervals (not bars) the z-scores look back over
    settle: int = 0  # extra bars masked after the longest warm-up (recursive convergence)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            minimum = 0 if f.name == "settle" else 1
            if f.name == "bb_dev":
                ok = value > 0
            else:
                ok = bool(values) and all(isinstance(v, int) and v >= minimum for v in values)
            if not ok:
                raise FeatureError(f"{f.name} is out of range: {value!r}")
        if self.macd_fast >= self.macd_slow:
            raise FeatureError("macd_fast must be < macd_slow")
        if self.atr_period < 2 or self.adx_period < 2:
            raise FeatureError("atr_period and adx_period must be >= 2")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureConfig:
        """Build from ``to_dict`` output."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise FeatureError(f"unknown feature config key(s): {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True, slots=True)
class FeatureLayout:
    """Names and warm-up lengths derived from a config and its extras."""

    names: tuple[str, ...]
    window_lookback: int  # bars before t the finite-memory features look at
    warmup: int  # leading bars without a complete feature row
    input_columns: tuple[str, ...] = field(default=OHLCV)


class FeatureSet:
    """The feature definition: ``compute`` for a bars frame, ``online`` for bar-by-bar use."""

    def __init__(
        self,
        config: FeatureConfig | None = None,
        extras: Iterable[str] = (),
        columns: Iterable[str] | None = None,
    ) -> None:
        self.config = config or FeatureConfig()
        extras = tuple(sorted(set(extras)))
        unknown = [e for e in extras if e not in EXTRA_GROUPS]
        if unknown:
            raise FeatureError(f"unknown extra group(s): {', '.join(unknown)}")
        self.extras = extras
        self.layout = _layout(self.config, extras)
        self.columns = self._check_columns(columns)

    def _check_columns(self, columns: Iterable[str] | None) -> tuple[str, ...] | None:
        """Return the chosen subset in layout order (None: every feature); raise if unknown."""
        if columns is None:
            return None
        chosen = set(columns)
        unknown = sorted(chosen - set(self.layout.names))
        if unknown or not chosen:
            raise FeatureError(f"unknown or no feature column(s): {', '.join(unknown)}")
        return tuple(n for n in self.layout.names if n in chosen)

    def select(self, columns: Iterable[str] | None) -> FeatureSet:
        """Return the same definition computing only ``columns`` (None: every feature)."""
        return FeatureSet(self.config, self.extras, columns)

    @classmethod
    def for_frame(cls, df: pd.DataFrame, config: FeatureConfig | None = None) -> FeatureSet:
        """Return a feature set using every extra group whose columns all exist in ``df``."""
        extras = [g for g, cols in EXTRA_GROUPS.items() if all(c in df.columns for c in cols)]
        return cls(config, extras)

    @property
    def names(self) -> tuple[str, ...]:
        """Return the feature names, in column order (only the chosen columns, if any)."""
        return self.columns or self.layout.names

    @property
    def warmup(self) -> int:
        """Return how many leading bars have no feature row (batch NaN, online None)."""
        return self.layout.warmup

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description that ``from_dict`` rebuilds."""
        data = {"config": self.config.to_dict(), "extras": list(self.extras)}
        if self.columns is not None:
            data["columns"] = list(self.columns)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSet:
        """Rebuild from ``to_dict`` output."""
        return cls(
            FeatureConfig.from_dict(data["config"]), data.get("extras", ()), data.get("columns")
        )

    def compute(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return the feature frame (same index as the bars; NaN rows during warm-up)."""
        check_talib_defaults()
        index, arrays = frame_arrays(df, self.layout.input_columns)
        values = window_features(self.config, self.extras, arrays)
        values.update(recursive_features(self.config, arrays["close"], _talib_state(self, arrays)))
        matrix = np.column_stack([values[name] for name in self.names])
        matrix[: self.warmup] = np.nan
        return pd.DataFrame(matrix, index=index, columns=list(self.names))

    def online(self) -> OnlineFeatures:
        """Return a fresh incremental calculator giving the same rows as ``compute``."""
        from models_ml.engine.features_online import OnlineFeatures

        return OnlineFeatures(self)


def check_talib_defaults() -> None:
    """Raise unless TA-Lib's global settings are the defaults the online replicas assume."""
    if talib.get_compatibility() != 0:
        raise FeatureError("TA-Lib compatibility mode must be the default (0)")
    changed = [f for f in _RECURSIVE_FUNCS if talib.get_unstable_period(f) != 0]
    if changed:
        raise FeatureError(f"TA-Lib unstable period changed for {', '.join(changed)}")


def frame_arrays(
    df: pd.DataFrame, columns: tuple[str, ...]
) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Validate a bars frame and return its UTC index and float64 column arrays."""
    if not isinstance(df.index, pd.DatetimeIndex) and "ts" in df.columns:
        df = df.set_index("ts")
    index = df.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise FeatureError("bars must be indexed by timezone-aware (UTC) timestamps")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise FeatureError("bar timestamps must be strictly increasing")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FeatureError(f"bars lack column(s): {', '.join(missing)}")
    arrays = {c: df[c].to_numpy(dtype=float, na_value=np.nan) for c in columns}
    _check_ohlcv(arrays)
    for name in FORWARD_FILLED.intersection(columns):
        arrays[name] = pd.Series(arrays[name]).ffill().to_numpy()
    return index, arrays


def _check_ohlcv(arrays: Mapping[str, np.ndarray]) -> None:
    """Raise FeatureError for non-finite or non-positive prices and negative volume."""
    prices = np.column_stack([arrays[c] for c in OHLCV[:4]])
    if not np.isfinite(prices).all() or (prices <= 0).any():
        raise FeatureError("open/high/low/close must be finite and > 0")
    volume = arrays["volume"]
    if not np.isfinite(volume).all() or (volume < 0).any():
        raise FeatureError("volume must be finite and >= 0")


def _layout(cfg: FeatureConfig, extras: tuple[str, ...]) -> FeatureLayout:
    """Return feature names and warm-up lengths (TA-Lib lookbacks) for a config."""
    names = [*_recursive_names(cfg), *_window_names(cfg), *_extra_names(cfg, extras)]
    window_lookback = max(
        max(cfg.ma_lengths) - 1,
        cfg.bb_period - 1,
        cfg.obv_window - 1,
        cfg.mfi_period,
        cfg.stoch_k + cfg.stoch_slow + cfg.stoch_d - 3,
        cfg.cci_period - 1,
        cfg.roc_period,
        cfg.willr_period - 1,
        cfg.return_lags,
        max(cfg.return_horizons),
        max(cfg.vol_windows),
        cfg.volume_window - 1,
        *_extra_lookbacks(cfg, extras),
    )
    recursive_lookback = max(
        cfg.rsi_period,
        cfg.macd_slow + cfg.macd_signal - 2,
        cfg.atr_period,
        max(cfg.ma_lengths) - 1,
        2 * cfg.adx_period - 1,
    )
    columns = OHLCV + tuple(c for g in extras for c in EXTRA_GROUPS[g])
    warmup = max(window_lookback, recursive_lookback) + cfg.settle
    return FeatureLayout(tuple(names), window_lookback, warmup, columns)


def _recursive_names(cfg: FeatureConfig) -> list[str]:
    """Return names of the infinite-memory features."""
    emas = [f"ema_ratio_{n}" for n in cfg.ma_lengths]
    return ["rsi", "macd", "macd_signal", "macd_hist", "atr", *emas, "adx", "di_spread"]


def _window_names(cfg: FeatureConfig) -> list[str]:
    """Return names of the finite-memory core features."""
    return [
        *(f"sma_ratio_{n}" for n in cfg.ma_lengths),
        "bb_width",
        "bb_pctb",
        "obv_z",
        "mfi",
        "stoch_k",
        "stoch_d",
        "cci",
        "roc",
        "willr",
        *(f"ret_lag_{j}" for j in range(cfg.return_lags)),
        *(f"ret_{k}" for k in cfg.return_horizons),
        *(f"rvol_{w}" for w in cfg.vol_windows),
        "volume_z",
        "hl_range",
        "close_pos",
    ]


def _extra_names(cfg: FeatureConfig, extras: tuple[str, ...]) -> list[str]:
    """Return names of the features built from optional extra columns."""
    by_group = {
        "vwap": ["vwap_dev"],
        "spread": ["spread_bps", "spread_z"],
        "book": ["book_imbalance"],
        "flow": ["flow_imbalance", f"flow_imbalance_{cfg.flow_window}"],
        "sentiment": ["sentiment", f"sentiment_change_{cfg.sentiment_window}"],
        "onchain": ["onchain_tx_z", "onchain_volume_z", "onchain_netflow_share"],
    }
    return [name for g in extras for name in by_group[g]]


def _extra_lookbacks(cfg: FeatureConfig, extras: tuple[str, ...]) -> list[int]:
    """Return the lookbacks of the extra features in use."""
    by_group = {
        "vwap": 0,
        "spread": cfg.spread_window - 1,
        "book": 0,
        "flow": cfg.flow_window - 1,
        "sentiment": cfg.sentiment_window,
        "onchain": cfg.onchain_window - 1,
    }
    return [by_group[g] for g in extras]


def window_features(
    cfg: FeatureConfig, extras: tuple[str, ...], a: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Return the finite-memory features of every bar in the arrays ``a``."""
    out = _indicator_block(cfg, a)
    out.update(_return_block(cfg, a))
    for group in extras:
        out.update(_EXTRA_BLOCKS[group](cfg, a))
    return out


def _indicator_block(cfg: FeatureConfig, a: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the finite-memory TA-Lib indicators, made scale-free."""
    h, low, c, v = a["high"], a["low"], a["close"], a["volume"]
    out = {f"sma_ratio_{n}": c / talib.SMA(c, n) - 1.0 for n in cfg.ma_lengths}
    # Bollinger from a two-pass window std: TA-Lib's running sum of squares drifts with history.
    mid = talib.SMA(c, cfg.bb_period)
    band = cfg.bb_dev * flat_to_zero(rolling_std(c, cfg.bb_period), mid)
    out["bb_width"] = 2.0 * band / mid
    out["bb_pctb"] = safe_divide(c - (mid - band), 2.0 * band, 0.5)
    # OBV starts at an arbitrary origin; its z-score over a window does not depend on it.
    out["obv_z"] = rolling_zscore(talib.OBV(c, v), cfg.obv_window)
    out["mfi"] = talib.MFI(h, low, c, v, cfg.mfi_period) / 100.0
    k, d = talib.STOCH(h, low, c, cfg.stoch_k, cfg.stoch_slow, 0, cfg.stoch_d, 0)
    out["stoch_k"], out["stoch_d"] = k / 100.0, d / 100.0
    out["cci"] = talib.CCI(h, low, c, cfg.cci_period) / 100.0
    out["roc"] = talib.ROC(c, cfg.roc_period) / 100.0
    out["willr"] = talib.WILLR(h, low, c, cfg.willr_period) / 100.0
    return out


def _return_block(cfg: FeatureConfig, a: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return lagged log returns, multi-bar returns, realised volatility, volume and bar shape."""
    h, low, c = a["high"], a["low"], a["close"]
    log_c = np.log(c)
    r = np.empty_like(log_c)
    r[0], r[1:] = np.nan, np.diff(log_c)
    out = {f"ret_lag_{j}": lag(r, j) for j in range(cfg.return_lags)}
    out.update({f"ret_{k}": log_c - lag(log_c, k) for k in cfg.return_horizons})
    out.update({f"rvol_{w}": rolling_rms(r, w) for w in cfg.vol_windows})
    out["volume_z"] = rolling_zscore(a["volume"], cfg.volume_window)
    out["hl_range"] = np.log(h / low)
    out["close_pos"] = safe_divide(c - low, h - low, 0.5)
    return out


def _vwap_block(cfg: FeatureConfig, a: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the close's deviation from the bar VWAP (0 when the VWAP is missing)."""
    vwap = a["vwap"]
    ok = np.isfinite(vwap) & (vwap > 0)
    return {"vwap_dev": np.where(ok, a["close"] / np.where(ok, vwap, 1.0) - 1.0, 0.0)}


def _spread_block(cfg: FeatureConfig, a: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the quoted spread in bps and its z-score."""
    bid, ask = a["bid"], a["ask"]
    spread = np.nan_to_num(safe_divide(2e4 * (ask - bid), ask + bid, 0.0), nan=0.0)
    return {"spread_bps": spread, "spread_z": rolling_zscore(spread, cfg.spread_window)}


def _book_block(cfg: FeatureConfig, a: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the top-of-book size imbalance in [-1, 1]."""
    bid, ask = a["bid_size"], a["ask_size"]
    return {"book_imbalance": np.nan_to_num(safe_divide(bid - ask, bid + ask, 0.0), nan=0.0)}


def _flow_block(cfg: FeatureConfig, a: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the buy/sell volume imbalance of the bar and over a window."""
    buy = np.nan_to_num(a["buy_volume"], nan=0.0)
    sell = np.nan_to_num(a["sell_volume"], nan=0.0)
    w = cfg.flow_window
    windowed = safe_divide(rolling_sum(buy - sell, w), rolling_sum(buy + sell, w), 0.0)
    return {
        "flow_imbalance": safe_divide(buy - sell, buy + sell, 0.0),
        f"flow_imbalance_{w}": windowed,
    }


def _sentiment_block(cfg: FeatureConfig, a: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the (forward-filled) sentiment score and its change over a window."""
    score = np.nan_to_num(a["sentiment"], nan=0.0)
    w = cfg.sentiment_window
    return {"sentiment": score, f"sentiment_change_{w}": score - lag(score, w)}


def _onchain_block(cfg: FeatureConfig, a: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return z-scores of network activity and the exchange net flow as a share of volume.

    Inputs are the latest finished on-chain interval at each bar (forward-filled), so the
    z-scores compare bars, not intervals; ``onchain_window`` bars is the look-back.
    """
    w = cfg.onchain_window
    count = np.nan_to_num(a["onchain_tx_count"], nan=0.0)
    volume = np.nan_to_num(a["onchain_volume"], nan=0.0)
    netflow = np.nan_to_num(a["onchain_netflow"], nan=0.0)
    return {
        "onchain_tx_z": rolling_zscore(count, w),
        "onchain_volume_z": rolling_zscore(volume, w),
        "onchain_netflow_share": np.clip(safe_divide(netflow, volume, 0.0), -1.0, 1.0),
    }


_EXTRA_BLOCKS = {
    "vwap": _vwap_block,
    "spread": _spread_block,
    "book": _book_block,
    "flow": _flow_block,
    "sentiment": _sentiment_block,
    "onchain": _onchain_block,
}


@dataclass(frozen=True, slots=True)
class RecursiveState:
    """Raw values of the infinite-memory indicators (arrays in batch, floats online)."""

    rsi: Any
    macd: Any
    macd_signal: Any
    macd_hist: Any
    atr: Any
    emas: tuple[Any, ...]
    adx: Any
    plus_di: Any
    minus_di: Any


def _talib_state(fs: FeatureSet, a: Mapping[str, np.ndarray]) -> RecursiveState:
    """Return the recursive indicators of a whole series, computed by TA-Lib."""
    cfg = fs.config
    h, low, c = a["high"], a["low"], a["close"]
    macd, signal, hist = talib.MACD(c, cfg.macd_fast, cfg.macd_slow, cfg.macd_signal)
    return RecursiveState(
        rsi=talib.RSI(c, cfg.rsi_period),
        macd=macd,
        macd_signal=signal,
        macd_hist=hist,
        atr=talib.ATR(h, low, c, cfg.atr_period),
        emas=tuple(talib.EMA(c, n) for n in cfg.ma_lengths),
        adx=talib.ADX(h, low, c, cfg.adx_period),
        plus_di=talib.PLUS_DI(h, low, c, cfg.adx_period),
        minus_di=talib.MINUS_DI(h, low, c, cfg.adx_period),
    )


def recursive_features(cfg: FeatureConfig, close: Any, s: RecursiveState) -> dict[str, Any]:
    """Return the scale-free infinite-memory features from raw indicator values."""
    out = {
        "rsi": s.rsi / 100.0,
        "macd": s.macd / close,
        "macd_signal": s.macd_signal / close,
        "macd_hist": s.macd_hist / close,
        "atr": s.atr / close,
    }
    out.update(
        {f"ema_ratio_{n}": close / e - 1.0 for n, e in zip(cfg.ma_lengths, s.emas, strict=True)}
    )
    out["adx"] = s.adx / 100.0
    out["di_spread"] = (s.plus_di - s.minus_di) / 100.0
    return out
