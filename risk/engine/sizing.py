"""Position sizing: Kelly, fixed fractional and volatility targeting, in exact Decimal money.

``SizingPolicy`` picks one of them for an account or a strategy (``risk.models.SizingPolicy`` in
the admin) and ``PolicySizer`` is what a running engine's strategies size their entries by.

Every sizer returns a non-negative quantity rounded DOWN to the lot size, and 0 when the rounded
quantity's notional is below the venue's minimum: sizing never rounds a position up past what
the rule allows. Statistics (win rate, moments, volatility) may be given as floats; they are
converted through ``str`` so the printed value is what is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, localcontext
from enum import StrEnum
from typing import Any

from risk.engine.constants import DEFAULT_LOT_SIZE
from risk.engine.errors import SizingError

Number = Decimal | int | float
_ZERO = Decimal(0)
_ONE = Decimal(1)


def to_decimal(value: Number, what: str = "value") -> Decimal:
    """Convert ``value`` to a finite Decimal (floats via ``str``)."""
    try:
        out = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise SizingError(f"{what}: {value!r} is not a number") from exc
    if not out.is_finite():
        raise SizingError(f"{what}: must be finite, got {value!r}")
    return out


def round_down_to_lot(quantity: Decimal, lot_size: Decimal) -> Decimal:
    """Return the largest multiple of ``lot_size`` not above ``quantity`` (0 if negative)."""
    if lot_size <= 0:
        raise SizingError(f"lot size must be > 0, got {lot_size}")
    if quantity <= 0:
        return _ZERO
    with localcontext() as ctx:
        ctx.prec = 60  # huge quantity / tiny lot must not overflow the integer division
        return (quantity // lot_size) * lot_size


@dataclass(frozen=True, slots=True)
class LotRules:
    """A venue's quantity step and minimum notional, plus an optional leverage ceiling."""

    lot_size: Decimal = DEFAULT_LOT_SIZE
    min_notional: Decimal = _ZERO
    max_leverage: Decimal | None = None  # notional / equity; None = no ceiling

    def __post_init__(self) -> None:
        """Reject rules no order could satisfy."""
        if self.lot_size <= 0:
            raise SizingError(f"lot size must be > 0, got {self.lot_size}")
        if self.min_notional < 0:
            raise SizingError(f"min notional must be >= 0, got {self.min_notional}")
        if self.max_leverage is not None and self.max_leverage <= 0:
            raise SizingError(f"max leverage must be > 0, got {self.max_leverage}")

    def apply(self, quantity: Decimal, price: Decimal, equity: Decimal) -> Decimal:
        """Cap by leverage, round down to the lot, and return 0 below the minimum notional."""
        if self.max_leverage is not None:
            quantity = min(quantity, self.max_leverage * equity / price)
        qty = round_down_to_lot(quantity, self.lot_size)
        if qty <= 0 or qty * price < self.min_notional:
            return _ZERO
        return qty


def _check_price(price: Decimal) -> None:
    """Raise unless ``price`` is a positive number."""
    if not price.is_finite() or price <= 0:
        raise SizingError(f"price must be > 0, got {price}")


def kelly_fraction(win_rate: Number, payoff_ratio: Number) -> Decimal:
    """Return the full Kelly fraction f = p − (1 − p) / b for a binary bet."""
    p = to_decimal(win_rate, "win_rate")
    b = to_decimal(payoff_ratio, "payoff_ratio")
    if not _ZERO <= p <= _ONE:
        raise SizingError(f"win rate must be in [0, 1], got {p}")
    if b <= 0:
        raise SizingError(f"payoff ratio must be > 0, got {b}")
    return p - (_ONE - p) / b


def kelly_fraction_from_moments(mean_return: Number, variance: Number) -> Decimal:
    """Return the continuous Kelly fraction f = μ / σ² (per-period mean and variance)."""
    mu = to_decimal(mean_return, "mean_return")
    var = to_decimal(variance, "variance")
    if var <= 0:
        raise SizingError(f"variance must be > 0, got {var}")
    return mu / var


def scale_kelly(full_kelly: Decimal, multiplier: Decimal, cap: Decimal) -> Decimal:
    """Return ``full_kelly × multiplier`` clipped to [0, cap]; a negative edge means no bet."""
    return max(_ZERO, min(full_kelly * multiplier, cap))


@dataclass(frozen=True, slots=True)
class KellySizer:
    """Size by a fraction of Kelly (half Kelly by default), capped as a fraction of equity."""

    multiplier: Decimal = Decimal("0.5")
    cap: Decimal = Decimal("0.25")
    lots: LotRules = LotRules()

    def __post_init__(self) -> None:
        """Reject multipliers/caps that would invert or unbound the bet."""
        if self.multiplier < 0 or self.cap < 0:
            raise SizingError("Kelly multiplier and cap must be >= 0")

    def fraction(self, full_kelly: Decimal) -> Decimal:
        """Return the fraction of equity to commit for a given full Kelly fraction."""
        return scale_kelly(full_kelly, self.multiplier, self.cap)

    def size_fraction(self, equity: Decimal, price: Decimal, full_kelly: Decimal) -> Decimal:
        """Return the quantity worth ``fraction(full_kelly)`` of ``equity`` at ``price``."""
        _check_price(price)
        if equity <= 0:
            return _ZERO
        notional = equity * self.fraction(full_kelly)
        return self.lots.apply(notional / price, price, equity)

    def size_from_win_rate(
        self, equity: Decimal, price: Decimal, win_rate: Number, payoff_ratio: Number
    ) -> Decimal:
        """Size from a win rate and an average-win / average-loss payoff ratio."""
        return self.size_fraction(equity, price, kelly_fraction(win_rate, payoff_ratio))

    def size_from_moments(
        self, equity: Decimal, price: Decimal, mean_return: Number, variance: Number
    ) -> Decimal:
        """Size from the expected return and variance of the asset per period."""
        return self.size_fraction(equity, price, kelly_fraction_from_moments(mean_return, variance))


@dataclass(frozen=True, slots=True)
class FixedFractionalSizer:
    """Risk a fixed fraction of equity between entry and stop: qty = equity × r / |entry − stop|."""

    risk_fraction: Decimal = Decimal("0.01")
    lots: LotRules = LotRules()

    def __post_init__(self) -> None:
        """Reject a negative risk fraction."""
        if self.risk_fraction < 0:
            raise SizingError(f"risk fraction must be >= 0, got {self.risk_fraction}")

    def size(self, equity: Decimal, entry_price: Decimal, stop_price: Decimal) -> Decimal:
        """Return the quantity that loses ``risk_fraction`` of equity if the stop is hit."""
        _check_price(entry_price)
        _check_price(stop_price)
        distance = abs(entry_price - stop_price)
        if distance == 0:
            raise SizingError("stop price equals entry price: risk per unit is zero")
        if equity <= 0:
            return _ZERO
        return self.lots.apply(equity * self.risk_fraction / distance, entry_price, equity)


def realised_volatility(returns: Sequence[Number], periods_per_year: Number = 1) -> Decimal:
    """Return the sample standard deviation of ``returns`` × √periods_per_year."""
    values = [to_decimal(r, "return") for r in returns]
    if len(values) < 2:
        raise SizingError(f"need at least 2 returns, got {len(values)}")
    periods = to_decimal(periods_per_year, "periods_per_year")
    if periods <= 0:
        raise SizingError(f"periods per year must be > 0, got {periods}")
    mean = sum(values, _ZERO) / len(values)
    variance = sum(((v - mean) ** 2 for v in values), _ZERO) / (len(values) - 1)
    return (variance * periods).sqrt()


@dataclass(frozen=True, slots=True)
class VolatilityTargetSizer:
    """Size so the position's volatility equals ``target_vol`` × equity.

    ``target_vol`` must be in the unit of the volatility given: per bar for ATR, annualised when
    realised volatility is annualised with ``periods_per_year``.
    """

    target_vol: Decimal = Decimal("0.01")
    lots: LotRules = LotRules()

    def __post_init__(self) -> None:
        """Reject a negative target."""
        if self.target_vol < 0:
            raise SizingError(f"target volatility must be >= 0, got {self.target_vol}")

    def size_for_volatility(self, equity: Decimal, price: Decimal, volatility: Number) -> Decimal:
        """Return qty with qty × price × volatility = target_vol × equity (vol as a fraction)."""
        _check_price(price)
        vol = to_decimal(volatility, "volatility")
        if vol <= 0:
            raise SizingError(f"volatility must be > 0, got {vol}")
        if equity <= 0:
            return _ZERO
        return self.lots.apply(self.target_vol * equity / (price * vol), price, equity)

    def size_atr(
        self, equity: Decimal, price: Decimal, atr: Number, atr_multiple: Number = 1
    ) -> Decimal:
        """Return qty with qty × ATR × multiple = target_vol × equity (ATR in price units)."""
        _check_price(price)
        move = to_decimal(atr, "atr") * to_decimal(atr_multiple, "atr_multiple")
        if move <= 0:
            raise SizingError(f"ATR × multiple must be > 0, got {move}")
        if equity <= 0:
            return _ZERO
        return self.lots.apply(self.target_vol * equity / move, price, equity)

    def size_realised(
        self,
        equity: Decimal,
        price: Decimal,
        returns: Sequence[Number],
        periods_per_year: Number = 1,
    ) -> Decimal:
        """Size from the realised volatility of ``returns`` (annualised if asked)."""
        vol = realised_volatility(returns, periods_per_year)
        if vol == 0:
            raise SizingError("realised volatility is zero: cannot target volatility")
        return self.size_for_volatility(equity, price, vol)


# --- sizing policies: what a running account sizes its strategies' entries by ---------------


class SizingMethod(StrEnum):
    """How a policy turns equity and price into a position size."""

    FIXED_FRACTION = "fixed_fraction"  # a fixed share of equity per position
    VOLATILITY_TARGET = "volatility_target"  # the position's volatility is a share of equity
    KELLY = "kelly"  # a multiple of the Kelly fraction of recent returns


@dataclass(frozen=True, slots=True)
class SizingPolicy:
    """One account's (or one strategy's) sizing rule.

    ``fraction`` is the share of equity one position may take: the size for ``fixed_fraction``,
    the ceiling for the other methods; None means the strategy's own ``fraction`` parameter.
    ``target_volatility`` is annualised (0.20 = 20 % a year of equity per position);
    ``lookback`` is how many recent bars estimate volatility and the Kelly moments.
    """

    method: SizingMethod = SizingMethod.FIXED_FRACTION
    fraction: Decimal | None = None
    target_volatility: Decimal = Decimal("0.20")
    lookback: int = 60
    kelly_multiplier: Decimal = Decimal("0.5")

    def __post_init__(self) -> None:
        """Coerce the method and reject settings no order could be sized by."""
        try:
            object.__setattr__(self, "method", SizingMethod(self.method))
        except ValueError as exc:
            raise SizingError(str(exc)) from exc
        if self.fraction is not None and not (self.fraction.is_finite() and self.fraction > 0):
            raise SizingError(f"sizing fraction must be > 0, got {self.fraction}")
        if not (self.target_volatility.is_finite() and self.target_volatility > 0):
            raise SizingError(f"target volatility must be > 0, got {self.target_volatility}")
        if self.lookback < 2:
            raise SizingError(f"lookback must be >= 2 bars, got {self.lookback}")
        if not (self.kelly_multiplier.is_finite() and self.kelly_multiplier > 0):
            raise SizingError(f"Kelly multiplier must be > 0, got {self.kelly_multiplier}")

    def as_dict(self) -> dict[str, str | int | None]:
        """Return the policy as JSON-able values (recorded with a session for its replay)."""
        return {
            "method": self.method.value,
            "fraction": None if self.fraction is None else str(self.fraction),
            "target_volatility": str(self.target_volatility),
            "lookback": self.lookback,
            "kelly_multiplier": str(self.kelly_multiplier),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SizingPolicy:
        """Rebuild a policy from ``as_dict``'s output."""
        fraction = data.get("fraction")
        return cls(
            method=SizingMethod(str(data["method"])),
            fraction=None if fraction is None else to_decimal(str(fraction), "fraction"),
            target_volatility=to_decimal(str(data["target_volatility"]), "target_volatility"),
            lookback=int(str(data["lookback"])),
            kelly_multiplier=to_decimal(str(data["kelly_multiplier"]), "kelly_multiplier"),
        )

    def size(
        self,
        *,
        equity: Decimal,
        price: Decimal,
        fraction: Decimal,
        lot: Decimal,
        closes: Sequence[float],
        periods_per_year: Number,
    ) -> Decimal:
        """Return the quantity this policy holds at ``price`` (0 when it cannot estimate one)."""
        _check_price(price)
        cap = self.fraction if self.fraction is not None else fraction
        lots = LotRules(lot_size=lot)
        if equity <= 0 or cap <= 0:
            return _ZERO
        ceiling = lots.apply(equity * cap / price, price, equity)
        if self.method is SizingMethod.FIXED_FRACTION:
            return ceiling
        returns = _returns(closes[-(self.lookback + 1) :])
        if len(returns) < 2:
            return _ZERO  # no estimate yet: no position rather than a guessed one
        if self.method is SizingMethod.VOLATILITY_TARGET:
            vol = realised_volatility(returns, periods_per_year)
            if vol == 0:
                return _ZERO
            sizer = VolatilityTargetSizer(self.target_volatility, lots)
            return min(sizer.size_for_volatility(equity, price, vol), ceiling)
        mean = sum(returns, _ZERO) / len(returns)
        variance = sum(((r - mean) ** 2 for r in returns), _ZERO) / (len(returns) - 1)
        if variance == 0:
            return _ZERO
        kelly = KellySizer(self.kelly_multiplier, cap, lots)
        return kelly.size_fraction(equity, price, kelly_fraction_from_moments(mean, variance))


def _returns(closes: Sequence[float]) -> list[Decimal]:
    """Return simple returns of consecutive positive closes."""
    values = [to_decimal(c, "close") for c in closes]
    return [b / a - _ONE for a, b in zip(values, values[1:], strict=False) if a > 0]


@dataclass(frozen=True, slots=True)
class PolicySizer:
    """Size every strategy of an account by its own policy, else the account's default.

    Satisfies ``trading.engine.strategy.PositionSizer``; ``periods_per_year`` is the number of
    the strategies' bars in a year, so annualised volatility targets mean what they say.
    """

    default: SizingPolicy = SizingPolicy()
    by_strategy: Mapping[str, SizingPolicy] = field(default_factory=dict)
    periods_per_year: Decimal = Decimal(365 * 24 * 60)

    def as_dict(self) -> dict[str, object]:
        """Return the sizer as JSON-able values (recorded with a session for its replay)."""
        return {
            "default": self.default.as_dict(),
            "by_strategy": {k: v.as_dict() for k, v in self.by_strategy.items()},
            "periods_per_year": str(self.periods_per_year),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicySizer:
        """Rebuild a sizer from ``as_dict``'s output."""
        return cls(
            SizingPolicy.from_dict(data["default"]),
            {k: SizingPolicy.from_dict(v) for k, v in data.get("by_strategy", {}).items()},
            to_decimal(str(data["periods_per_year"]), "periods_per_year"),
        )

    def policy(self, strategy: str) -> SizingPolicy:
        """Return the policy ``strategy`` is sized by."""
        return self.by_strategy.get(strategy, self.default)

    def lookback(self, strategy: str) -> int:
        """Return how many recent closes sizing ``strategy`` reads (none for a fixed fraction)."""
        policy = self.policy(strategy)
        return 0 if policy.method is SizingMethod.FIXED_FRACTION else policy.lookback + 1

    def size(
        self,
        *,
        strategy: str,
        equity: Decimal,
        price: Decimal,
        fraction: Decimal,
        lot: Decimal,
        closes: Sequence[float],
    ) -> Decimal:
        """Return the quantity ``strategy`` may hold at ``price``."""
        return self.policy(strategy).size(
            equity=equity,
            price=price,
            fraction=fraction,
            lot=lot,
            closes=closes,
            periods_per_year=self.periods_per_year,
        )
