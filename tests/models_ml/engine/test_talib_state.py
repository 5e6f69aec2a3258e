"""The incremental TA-Lib replicas reproduce talib on whole arrays."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from models_ml.engine.talib_state import TalibAdx, TalibAtr, TalibEma, TalibMacd, TalibRsi


def _series(seed: int, n: int = 3000, price: float = 30_000.0) -> tuple[np.ndarray, ...]:
    """Return high, low, close with a flat stretch (zero ranges) and gaps between bars."""
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    high = close * (1 + np.abs(rng.normal(0, 0.001, n)))
    low = close * (1 - np.abs(rng.normal(0, 0.001, n)))
    close[500:530] = high[500:530] = low[500:530] = close[499]
    return high, low, close


def assert_same(reference: np.ndarray, got: list[float]) -> None:
    """Assert NaN positions match and values agree to 1e-9 relative."""
    got_arr = np.asarray(got, dtype=float)
    np.testing.assert_array_equal(np.isnan(reference), np.isnan(got_arr))
    np.testing.assert_allclose(got_arr, reference, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("price", [30_000.0, 0.5])
def test_replicas_match_talib_on_the_whole_series(seed: int, price: float) -> None:
    high, low, close = _series(seed, price=price)
    for period in (5, 20):
        ema = TalibEma(period)
        assert_same(talib.EMA(close, period), [ema.update(x) for x in close])
    rsi = TalibRsi(14)
    assert_same(talib.RSI(close, 14), [rsi.update(x) for x in close])
    atr = TalibAtr(14)
    assert_same(
        talib.ATR(high, low, close, 14),
        [atr.update(*b) for b in zip(high, low, close, strict=True)],
    )


@pytest.mark.parametrize("seed", [0, 3])
def test_macd_replica_reproduces_talib_seeding(seed: int) -> None:
    _, _, close = _series(seed)
    macd = TalibMacd(12, 26, 9)
    got = np.array([macd.update(x) for x in close])
    for column, reference in enumerate(talib.MACD(close, 12, 26, 9)):
        assert_same(reference, list(got[:, column]))
    # TA-Lib's MACD is not EMA12 - EMA26 (the fast EMA is seeded later): the replica must differ.
    naive = talib.EMA(close, 12) - talib.EMA(close, 26)
    assert not np.allclose(got[33:40, 0], naive[33:40], rtol=1e-9)


def test_adx_and_directional_indicators_match_talib() -> None:
    high, low, close = _series(7)
    adx = TalibAdx(14)
    values, plus, minus = [], [], []
    for bar in zip(high, low, close, strict=True):
        values.append(adx.update(*bar))
        plus.append(adx.plus_di)
        minus.append(adx.minus_di)
    assert_same(talib.ADX(high, low, close, 14), values)
    assert_same(talib.PLUS_DI(high, low, close, 14)[14:], plus[14:])
    assert_same(talib.MINUS_DI(high, low, close, 14)[14:], minus[14:])


def test_invalid_periods_are_rejected() -> None:
    with pytest.raises(ValueError):
        TalibMacd(26, 12, 9)
    with pytest.raises(ValueError):
        TalibAtr(1)
