"""CSV/Parquet bar import: formats, timestamp units, and clear errors on bad input."""

from __future__ import annotations

import importlib.util
import io
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from marketdata.adapters.files import BarFileError, bars_from_frame, read_bars, read_bars_csv
from marketdata.engine.events import Bar

HAS_PARQUET = any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet"))
T0 = datetime(2024, 1, 2, 3, 4, tzinfo=UTC)


def csv(text: str, **kwargs) -> list[Bar]:
    kwargs.setdefault("symbol", "BTC-USD")
    kwargs.setdefault("timeframe", "1m")
    return read_bars_csv(io.StringIO(text), **kwargs)


def test_csv_with_iso_timestamps_and_optional_columns(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "Timestamp,Open,High,Low,Close,Volume,VWAP,trade_count\n"
        "2024-01-02T03:05:00Z,101,103,100,102,5.5,,\n"
        "2024-01-02T03:04:00+00:00,100,102,99,101,4,100.5,12\n"
    )
    bars = read_bars(path, symbol="BTC-USD", timeframe="1m", venue="kaggle")
    assert bars[0] == Bar(
        symbol="BTC-USD",
        timeframe="1m",
        ts=T0,
        open=100.0,
        high=102.0,
        low=99.0,
        close=101.0,
        volume=4.0,
        vwap=100.5,
        trade_count=12,
        venue="kaggle",
    )
    assert bars[1].ts == datetime(2024, 1, 2, 3, 5, tzinfo=UTC)  # sorted by time
    assert bars[1].vwap is None and bars[1].trade_count == 0
    assert bars[1].ts.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "unit"),
    [(1704164640, None), (1704164640000, None), (1704164640000000, None), (1704164640000, "ms")],
)
def test_epoch_timestamps_with_inferred_or_given_unit(value: int, unit: str | None) -> None:
    bars = csv(f"ts,open,high,low,close,volume\n{value},1,1,1,1,0\n", ts_unit=unit)
    assert bars[0].ts == T0


def test_naive_iso_timestamps_are_taken_as_utc() -> None:
    assert csv("ts,open,high,low,close,volume\n2024-01-02 03:04:00,1,1,1,1,0\n")[0].ts == T0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "time,open,high,low,close,volume\n1,1,1,1,1,1\n",
            r"missing column\(s\) \['ts\|timestamp'\]",
        ),
        ("ts,open,high,low,close\n1,1,1,1,1\n", r"missing column\(s\) \['volume'\]"),
        (
            "ts,open,high,low,close,volume\n2024-01-02,1,x,1,1,1\n",
            r"'high' has non-numeric .*'x'.*\[1\]",
        ),
        (
            "ts,open,high,low,close,volume\n2024-01-02,1,1,1,,1\n",
            r"'close' has non-numeric or empty",
        ),
        (
            "ts,open,high,low,close,volume\n2024-01-02,1,1,1,1,1\n2024-01-03,0,1,1,1,1\n",
            r"'open' must be > 0 \(data row\(s\) \[2\]\)",
        ),
        ("ts,open,high,low,close,volume\n2024-01-02,1,1,1,1,-1\n", r"'volume' must be >= 0"),
        (
            "ts,open,high,low,close,volume\nyesterday,1,1,1,1,1\n",
            r"unparseable timestamp 'yesterday'",
        ),
        (
            "ts,open,high,low,close,volume,trade_count\n2024-01-02,1,1,1,1,1,1.5\n",
            r"'trade_count' must be an integer",
        ),
        (
            "ts,open,high,low,close,volume\n2024-01-02,1,1,1,1,1\n2024-01-02,1,1,1,1,1\n",
            r"duplicate timestamp",
        ),
    ],
)
def test_bad_files_raise_clear_errors(text: str, message: str) -> None:
    with pytest.raises(BarFileError, match=message):
        csv(text)


def test_empty_inputs_and_bad_arguments(tmp_path: Path) -> None:
    assert csv("") == []
    assert csv("ts,open,high,low,close,volume\n") == []
    with pytest.raises(BarFileError, match="unknown timeframe"):
        csv("ts,open,high,low,close,volume\n", timeframe="7m")
    with pytest.raises(BarFileError, match="unknown bar file type"):
        read_bars(tmp_path / "bars.xlsx", symbol="BTC-USD", timeframe="1m")
    with pytest.raises(BarFileError, match="cannot read CSV"):
        read_bars(tmp_path / "missing.csv", symbol="BTC-USD", timeframe="1m")


def test_time_indexed_frame() -> None:
    frame = pd.DataFrame(
        {"open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5], "volume": [3.0]},
        index=pd.DatetimeIndex([T0]),
    )
    (bar,) = bars_from_frame(frame, symbol="ETH-USD", timeframe="1h")
    assert bar.ts == T0 and bar.close == 1.5 and bar.timeframe == "1h"


@pytest.mark.skipif(HAS_PARQUET, reason="a Parquet engine is installed")
def test_parquet_without_engine_explains_what_to_install(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(BarFileError, match="pyarrow"):
        read_bars(path, symbol="BTC-USD", timeframe="1m")


@pytest.mark.skipif(not HAS_PARQUET, reason="needs pyarrow or fastparquet")
def test_parquet_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    frame = pd.DataFrame(
        {"ts": [T0], "open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5], "volume": [3.0]}
    )
    frame.to_parquet(path)
    (bar,) = read_bars(path, symbol="BTC-USD", timeframe="1m")
    assert bar.ts == T0 and bar.volume == 3.0
