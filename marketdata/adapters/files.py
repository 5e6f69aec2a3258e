"""Import OHLCV bars from CSV and Parquet files.

Columns (case-insensitive): ``ts`` or ``timestamp``, ``open``, ``high``, ``low``, ``close``,
``volume``, optional ``vwap`` and ``trade_count``. Timestamps are ISO 8601 strings (naive ones are
taken as UTC) or Unix epoch numbers whose unit is given or inferred from their magnitude.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from typing import IO, Literal

import pandas as pd

from marketdata.engine.events import TIMEFRAME_SECONDS, Bar

PRICE_COLUMNS = ("open", "high", "low", "close")
REQUIRED_COLUMNS = (*PRICE_COLUMNS, "volume")
TS_COLUMNS = ("ts", "timestamp")
EpochUnit = Literal["s", "ms", "us", "ns"]
# Upper bounds of present-day epoch values per unit (year ~5138 in s, ~2286 in ms).
_UNIT_LIMITS: tuple[tuple[float, EpochUnit], ...] = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))


class BarFileError(ValueError):
    """Raise when a bar file cannot be imported; the message names the file, column and row."""


def read_bars(
    path: str | Path,
    *,
    symbol: str,
    timeframe: str,
    venue: str = "file",
    ts_unit: EpochUnit | None = None,
) -> list[Bar]:
    """Read bars from a ``.csv``/``.csv.gz`` or ``.parquet``/``.pq`` file, by extension."""
    name = str(path).lower()
    if name.endswith((".parquet", ".pq")):
        return read_bars_parquet(
            path, symbol=symbol, timeframe=timeframe, venue=venue, ts_unit=ts_unit
        )
    if name.endswith((".csv", ".csv.gz", ".txt")):
        return read_bars_csv(path, symbol=symbol, timeframe=timeframe, venue=venue, ts_unit=ts_unit)
    raise BarFileError(f"{path}: unknown bar file type (expected .csv or .parquet)")


def read_bars_csv(
    source: str | Path | IO[str],
    *,
    symbol: str,
    timeframe: str,
    venue: str = "file",
    ts_unit: EpochUnit | None = None,
) -> list[Bar]:
    """Read bars from a CSV file or text stream."""
    label = str(getattr(source, "name", source))
    try:
        frame = pd.read_csv(source)
    except pd.errors.EmptyDataError:
        return []
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BarFileError(f"{label}: cannot read CSV: {exc}") from exc
    return bars_from_frame(
        frame, symbol=symbol, timeframe=timeframe, venue=venue, ts_unit=ts_unit, source=label
    )


def read_bars_parquet(
    path: str | Path,
    *,
    symbol: str,
    timeframe: str,
    venue: str = "file",
    ts_unit: EpochUnit | None = None,
) -> list[Bar]:
    """Read bars from a Parquet file (needs pyarrow or fastparquet installed)."""
    try:
        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise BarFileError(
            f"{path}: Parquet import needs the 'pyarrow' package (or 'fastparquet'); "
            f"install it with `pip install pyarrow` ({exc})"
        ) from exc
    except (OSError, ValueError) as exc:
        raise BarFileError(f"{path}: cannot read Parquet: {exc}") from exc
    return bars_from_frame(
        frame, symbol=symbol, timeframe=timeframe, venue=venue, ts_unit=ts_unit, source=str(path)
    )


def bars_from_frame(
    frame: pd.DataFrame,
    *,
    symbol: str,
    timeframe: str,
    venue: str = "file",
    ts_unit: EpochUnit | None = None,
    source: str = "<frame>",
) -> list[Bar]:
    """Validate a DataFrame of bars and convert it to Bars sorted by time."""
    if timeframe not in TIMEFRAME_SECONDS:
        raise BarFileError(f"unknown timeframe {timeframe!r}; use one of {list(TIMEFRAME_SECONDS)}")
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    if not any(c in frame.columns for c in TS_COLUMNS) and isinstance(
        frame.index, pd.DatetimeIndex
    ):
        frame = frame.rename_axis("ts").reset_index()  # a time-indexed frame, as pandas users keep
    # Row numbers in error messages are positions, whatever index the caller used.
    frame = frame.reset_index(drop=True)
    ts_column = _columns(frame, source)
    if frame.empty:
        return []
    ts = _timestamps(frame[ts_column], ts_unit, source, ts_column)
    values = {c: _numbers(frame, c, source, required=True) for c in REQUIRED_COLUMNS}
    for column in PRICE_COLUMNS:
        _check(values[column] > 0, source, column, "must be > 0")
    _check(values["volume"] >= 0, source, "volume", "must be >= 0")
    vwap = _numbers(frame, "vwap", source, required=False)
    if vwap is not None:
        _check(vwap.isna() | (vwap > 0), source, "vwap", "must be > 0")
    counts = _numbers(frame, "trade_count", source, required=False)
    if counts is not None:
        counts = counts.fillna(0)
        _check(
            (counts >= 0) & (counts == counts.round()),
            source,
            "trade_count",
            "must be an integer >= 0",
        )
    duplicated = ts.duplicated()
    if duplicated.any():
        raise BarFileError(
            f"{source}: duplicate timestamp {ts[duplicated].iloc[0]} ({_rows(duplicated)})"
        )
    return _build(ts, values, vwap, counts, symbol=symbol, timeframe=timeframe, venue=venue)


def _columns(frame: pd.DataFrame, source: str) -> str:
    """Return the timestamp column name after checking the required columns exist."""
    found = list(frame.columns)
    ts_column = next((c for c in TS_COLUMNS if c in found), None)
    missing = [c for c in REQUIRED_COLUMNS if c not in found]
    if ts_column is None:
        missing.insert(0, "ts|timestamp")
    if missing:
        raise BarFileError(f"{source}: missing column(s) {missing}; found {found}")
    return ts_column


def _numbers(frame: pd.DataFrame, column: str, source: str, *, required: bool) -> pd.Series | None:
    """Return ``column`` as floats; non-numeric cells (and gaps in required columns) are errors."""
    if column not in frame.columns:
        return None
    raw = frame[column]
    numbers = pd.to_numeric(raw, errors="coerce").astype(float)
    bad = numbers.isna() & raw.notna() if not required else numbers.isna()
    bad |= numbers.abs() == float("inf")
    if bad.any():
        raise BarFileError(
            f"{source}: column {column!r} has non-numeric or empty value "
            f"{raw[bad].iloc[0]!r} ({_rows(bad)})"
        )
    return numbers


def _timestamps(raw: pd.Series, unit: EpochUnit | None, source: str, column: str) -> pd.Series:
    """Parse epoch numbers or ISO strings into UTC timestamps."""
    numeric = pd.to_numeric(raw, errors="coerce")
    try:
        if numeric.notna().all():
            unit = unit or _infer_unit(float(numeric.abs().max()))
            parsed = pd.to_datetime(numeric, unit=unit, utc=True)
        else:
            parsed = pd.to_datetime(raw, utc=True, format="ISO8601", errors="coerce")
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise BarFileError(f"{source}: column {column!r} has unusable timestamps: {exc}") from exc
    bad = parsed.isna()
    if bad.any():
        raise BarFileError(
            f"{source}: column {column!r} has unparseable timestamp {raw[bad].iloc[0]!r} "
            f"({_rows(bad)})"
        )
    return parsed


def _infer_unit(largest: float) -> EpochUnit:
    return next((unit for limit, unit in _UNIT_LIMITS if largest < limit), "ns")


def _check(ok: pd.Series, source: str, column: str, rule: str) -> None:
    if not ok.all():
        raise BarFileError(f"{source}: column {column!r} {rule} ({_rows(~ok)})")


def _rows(mask: pd.Series, shown: int = 5) -> str:
    """Describe failing rows as 1-based data rows (CSV line = row + 1 for the header)."""
    rows = [int(i) + 1 for i in mask[mask].index[:shown]]
    more = int(mask.sum()) - len(rows)
    return f"data row(s) {rows}" + (f" and {more} more" if more > 0 else "")


def _build(
    ts: pd.Series,
    values: dict[str, pd.Series],
    vwap: pd.Series | None,
    counts: pd.Series | None,
    *,
    symbol: str,
    timeframe: str,
    venue: str,
) -> list[Bar]:
    order = ts.argsort(kind="stable")
    stamps = [t.to_pydatetime().astimezone(UTC) for t in ts.dt.floor("us").iloc[order]]
    columns: Sequence[list[float]] = [values[c].iloc[order].tolist() for c in REQUIRED_COLUMNS]
    vwaps = vwap.iloc[order].tolist() if vwap is not None else [None] * len(stamps)
    trade_counts = counts.iloc[order].tolist() if counts is not None else [0] * len(stamps)
    return [
        Bar(
            symbol=symbol,
            timeframe=timeframe,
            ts=stamp,
            open=o,
            high=h,
            low=low,
            close=c,
            volume=v,
            vwap=None if w is None or w != w else w,  # NaN != NaN: a blank vwap cell
            trade_count=int(n),
            venue=venue,
        )
        for stamp, o, h, low, c, v, w, n in zip(stamps, *columns, vwaps, trade_counts, strict=True)
    ]


def read_tradingview_csv(path: str | Path, *, symbol: str, timeframe: str) -> list[Bar]:
    """Read a TradingView chart export ("Export chart data…"): ``time,open,high,low,close,Volume``.

    ``time`` is the bar's open as Unix seconds or ISO 8601 (the export's time-format choice);
    indicator columns the chart carried (``Volume MA``, ``VWAP``, plots) are ignored: a
    session-anchored indicator is not the bar's own VWAP. An export without ``Volume`` is
    refused rather than stored with an invented volume.
    """
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return []
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BarFileError(f"{path}: cannot read CSV: {exc}") from exc
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    if "time" not in frame.columns:
        raise BarFileError(f"{path}: not a TradingView export (no 'time' column)")
    if "volume" not in frame.columns:
        raise BarFileError(
            f"{path}: the export has no Volume column; add the Volume indicator to the chart "
            "and export again"
        )
    frame = frame[["time", *REQUIRED_COLUMNS]].rename(columns={"time": "ts"})
    return bars_from_frame(
        frame, symbol=symbol, timeframe=timeframe, venue="tradingview", source=str(path)
    )
