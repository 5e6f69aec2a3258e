"""Default values for risk limits and sizing; settings may override them at the Django layer."""

from __future__ import annotations

from decimal import Decimal

MAX_POSITION_SIZE_PCT = Decimal("0.20")  # of equity, per symbol
MAX_DAILY_LOSS_PCT = Decimal("0.05")  # equity below day start -> reducing only
MAX_DRAWDOWN_PCT = Decimal("0.20")  # equity below peak -> kill switch (halted)

DEFAULT_LOT_SIZE = Decimal("0.00000001")  # one satoshi: finest step most crypto venues accept
DEFAULT_RATE_WINDOW_SECONDS = 60
DEFAULT_CORRELATION_WINDOW = 100  # returns kept per symbol
DEFAULT_CORRELATION_MIN_OBSERVATIONS = 20  # fewer aligned returns -> correlation unknown
DEFAULT_CORRELATED_EXPOSURE_PCT = Decimal("0.50")  # combined cap when max_correlation has none

BPS = Decimal(10_000)
