"""Reads for research: stored market data as frames, runs and their findings."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from marketdata.models import BookSnapshot, Quote, TradeTick
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


BOOK_COLUMNS = ["bid", "bid_size", "ask", "ask_size", "bid_depth", "ask_depth"]


def books_frame(*, symbol: str, start: datetime, end: datetime, levels: int = 5) -> pd.DataFrame:
    """Return stored book snapshots in [start, end) indexed by ``ts``: the touch and the size
    summed over the top ``levels`` levels of each side (``bid_depth``, ``ask_depth``)."""
    rows = (
        BookSnapshot.objects.filter(symbol__name=symbol, ts__gte=start, ts__lt=end)
        .order_by("ts", "id")
        .values_list("ts", "bids", "asks")
        .iterator(chunk_size=5000)
    )
    records = []
    for ts, bids, asks in rows:
        if not bids or not asks:
            continue  # a one-sided book has no mid
        records.append(
            (
                ts,
                float(bids[0][0]),
                float(bids[0][1]),
                float(asks[0][0]),
                float(asks[0][1]),
                sum(float(size) for _, size in bids[:levels]),
                sum(float(size) for _, size in asks[:levels]),
            )
        )
    frame = pd.DataFrame.from_records(records, columns=["ts", *BOOK_COLUMNS])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.set_index("ts")


def research_runs(*, status: str | None = None, kind: str | None = None):
    """Return research runs (a queryset to page), optionally of one status and kind."""
    runs = ResearchRun.objects.all()
    if status:
        runs = runs.filter(status=status)
    if kind:
        runs = runs.filter(kind=kind)
    return runs


def research_run(*, pk: int) -> ResearchRun | None:
    """Return one run or None."""
    return ResearchRun.objects.filter(pk=pk).first()


def findings(*, run: int | None = None, significant: bool | None = None):
    """Return findings (a queryset to page), optionally of one run and by significance."""
    rows = Finding.objects.all()
    if run is not None:
        rows = rows.filter(run_id=run)
    if significant is not None:
        rows = rows.filter(significant=significant)
    return rows


def finding(*, pk: int) -> Finding | None:
    """Return one finding (with its run) or None."""
    return Finding.objects.select_related("run").filter(pk=pk).first()


def run_with_findings(run_id: int) -> tuple[ResearchRun, list[Finding]]:
    """Return a run and its findings, most significant first."""
    run = ResearchRun.objects.get(pk=run_id)
    findings = list(run.findings.order_by("-significant", "p_value", "id"))
    return run, findings
