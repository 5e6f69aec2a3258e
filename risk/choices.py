"""Enumerations for risk, built from ``risk.engine``'s enums so the ORM and engine agree."""

from django.db import models

from risk.engine.events import Severity as _Severity
from risk.engine.limits import LimitAction as _LimitAction
from risk.engine.limits import LimitKind as _LimitKind
from risk.engine.limits import LimitScope as _LimitScope
from risk.engine.sizing import SizingMethod as _SizingMethod
from trading.engine.hooks import TradingMode as _TradingMode


def _choices(name: str, enum) -> type[models.TextChoices]:
    """Return a TextChoices class mirroring ``enum``."""
    return models.TextChoices(name, [(m.name, m.value) for m in enum])


LimitScope = _choices("LimitScope", _LimitScope)
LimitKind = _choices("LimitKind", _LimitKind)
LimitAction = _choices("LimitAction", _LimitAction)
RiskSeverity = _choices("RiskSeverity", _Severity)
TradingStateChoice = _choices("TradingStateChoice", _TradingMode)
SizingMethod = _choices("SizingMethod", _SizingMethod)
