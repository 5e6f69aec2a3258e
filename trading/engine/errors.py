"""Domain exceptions raised by the trading engine."""

from __future__ import annotations


class TradingError(Exception):
    """Base class of every trading-engine error."""


class OrderRejected(TradingError):
    """Raise when an order is invalid or refused; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IllegalTransition(TradingError):
    """Raise when an order status change is not allowed by the state machine."""


class OverFill(TradingError):
    """Raise when a fill would take an order's filled quantity above its quantity."""


class UnknownOrder(TradingError, KeyError):
    """Raise when an order id is not known (or no longer active) where one is required."""

    def __str__(self) -> str:
        # KeyError.__str__ repr()s its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class UnknownAccount(TradingError, KeyError):
    """Raise when an account has no portfolio registered with the order manager."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StrategyConfigError(TradingError, ValueError):
    """Raise when a strategy name or its parameters are invalid."""


class AlgoConfigError(TradingError, ValueError):
    """Raise when an execution algorithm is configured inconsistently."""
