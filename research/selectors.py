"""Reads for research: stored market data as frames, runs and their findings."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from marketdata.models import Quote, TradeTick
from marketdata.services import bars_load
from research.models import Finding, ResearchRun


def closes_frame(
    *, symbols: list[str], timeframe: str, start: datetime, end: datetime, source: str = "database"
) -> pd.DataFrame:
    """Return closes (columns = symbols) on the timestamps every symbol has a bar for.

    Stored venue bars (a symbol with none in the range is an error saying how to get them), or
    with ``source="sim"`` the simulated market's, stored marked simulated (as ``backtest``).
    """
    columns = {
        s: bars_frame_for(symbol=s, timeframe=timeframe, start=start, end=end, source=source)[
            "close"
        ]
        for s in symbols
    }
    return pd.DataFrame(columns).dropna()


def bars_frame_for(
    *, symbol: str, timeframe: str, start: datetime, end: datetime, source: str = "database"
) -> pd.DataFrame:
    """Return one symbol's OHLCV bars in [start, end) from ``source`` (database or sim)."""
    bars, _origin = bars_load(
        symbol=symbol, timeframe=timeframe, start=start, end=end, source=source
    )
    return bars


def trades_frame(*, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Return stored trades in [start, end) indexed by ``ts``: price, size, side."""
    rows = (
        TradeTick.objects.filter(symbol__name=symbol, ts__gte=start, ts__lt=end)
        .order_by("ts", "id")
        .values_list("ts", "price", "size", "side")
    )
    frame = pd.DataFrame.from_records(list(rows), columns=["ts", "price", "size", "side"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.set_index("ts")


def quotes_frame(*, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Return stored top-of-book quotes in [start, end) indexed by ``ts``."""
    rows = (
        Quote.objects.filter(symbol__name=symbol, ts__gte=start, ts__lt=end)
        .order_by("ts", "id")
        .values_list("ts", "bid", "bid_size", "ask", "ask_size")
    )
    columns = ["ts", "bid", "bid_size", "ask", "ask_size"]
    frame = pd.DataFrame.from_records(list(rows), columns=columns)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.set_index("ts")


def run_with_findings(run_id: int) -> tuple[ResearchRun, list[Finding]]:
    """Return a run and its findings, most significant first."""
    run = ResearchRun.objects.get(pk=run_id)
    findings = list(run.findings.order_by("-significant", "p_value", "id"))
    return run, findings
