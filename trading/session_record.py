"""What a ``session_start`` record keeps of a session's warm-up and sizing, for its replay.

``runtrader`` shows its strategies past bars before going live and sizes their entries by the
account's sizing policy; a replay of the session (``backtest --replay-account``) must do the
same to make the same decisions, so both are recorded with the session and rebuilt from it here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from marketdata.engine.events import Bar
from risk.engine.sizing import PolicySizer


def warmup_record(bars: Iterable[Bar]) -> list[list[Any]]:
    """Return warm-up bars as JSON-able rows (symbol, timeframe, ts, open, high, low, close)."""
    return [[b.symbol, b.timeframe, b.ts.isoformat(), b.open, b.high, b.low, b.close] for b in bars]


def warmup_bars(session: Mapping[str, Any]) -> list[Bar]:
    """Return the warm-up bars a recorded session showed its strategies."""
    return [
        Bar(symbol, timeframe, datetime.fromisoformat(ts), o, h, low, c, 0.0)
        for symbol, timeframe, ts, o, h, low, c in session.get("warmup") or []
    ]


def session_sizer(session: Mapping[str, Any]) -> PolicySizer | None:
    """Return the sizing a recorded session used (None: strategies sized themselves)."""
    data = session.get("sizing")
    return PolicySizer.from_dict(data) if data else None
