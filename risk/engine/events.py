"""What the risk engine reports: risk events and requested trading-mode changes.

The checker appends these to outboxes the caller drains; persisting them (RiskEvent rows,
TradingState updates, alerts) is the job of the Django services, never of the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from trading.engine.hooks import TradingMode


class Severity(StrEnum):
    """How loud a risk event is; the ORM ``RiskEvent.severity`` stores these values."""

    INFO = "info"  # an order was reduced to fit a limit
    WARNING = "warning"  # an order was rejected
    CRITICAL = "critical"  # the trading mode must change (reducing / halted)


# Ranks let callers compare modes: a request only escalates, never relaxes.
MODE_RANK: Mapping[TradingMode, int] = {
    TradingMode.ACTIVE: 0,
    TradingMode.REDUCING: 1,
    TradingMode.HALTED: 2,
}


@dataclass(frozen=True, slots=True)
class RiskEventRecord:
    """A limit breach, reduction or rejection worth recording."""

    severity: Severity
    limit_kind: str  # a LimitKind value, or "trading_state" / "order_validation"
    message: str
    context: Mapping[str, Any] = field(default_factory=dict)
    account: str = ""
    ts: datetime | None = None


@dataclass(frozen=True, slots=True)
class ModeChangeRequest:
    """The checker asks the caller to move ``account`` to ``mode`` because of ``limit_kind``."""

    account: str
    mode: TradingMode
    reason: str
    limit_kind: str
    ts: datetime | None = None
