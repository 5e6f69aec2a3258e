"""Buying power: how much of an order an account can pay for, fees included.

An account may hold gross exposure (Σ |position value|) of at most ``leverage`` × equity, both
measured at the price of the fill being judged and after its fee. At the default 1x a long-only
account therefore never has negative cash, and a short needs collateral worth its value: no
borrowing. Orders that only shrink a position always pass (whatever the account's state), so an
over-extended account can always get out.

The rule is applied twice on one engine: when an order is submitted (``OrderManager``, at the
reference price) and when it fills (``PaperVenue`` and the backtest venue, at the fill price),
so an entry sized at a bar's close cannot overdraw the account when it fills at the next open.
``BuyingPowerPolicy`` says what happens to an order that needs more: ``reduce`` it to what is
affordable (the rest is cancelled at a fill) or ``reject`` it whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from trading.engine.constants import DEFAULT_LOT
from trading.engine.money import BPS, FEE_STEP, ONE, ZERO, exact_rate, fee_for, floor_to_step


class BuyingPowerPolicy(StrEnum):
    """What happens to an order that needs more buying power than the account has."""

    REDUCE = "reduce"  # fill what is affordable, cancel the rest
    REJECT = "reject"  # refuse (at a fill: cancel) the whole order


@dataclass(frozen=True, slots=True)
class Margin:
    """An account's buying-power setting: leverage (1 = cash only) and the policy beyond it."""

    leverage: Decimal = ONE
    policy: BuyingPowerPolicy = BuyingPowerPolicy.REDUCE
    step: Decimal = DEFAULT_LOT  # reduced quantities are floored to this

    def __post_init__(self) -> None:
        if not isinstance(self.leverage, Decimal) or not self.leverage >= ONE:
            raise ValueError(f"leverage must be a Decimal >= 1, got {self.leverage!r}")
        object.__setattr__(self, "policy", BuyingPowerPolicy(self.policy))
        if self.step <= 0:
            raise ValueError("step must be positive")


_MINUS_FEE_STEP = -FEE_STEP

# ``fits``'s fee rate for the last ``fee_bps`` object seen (``money.exact_rate``'s value, None
# when not exact), matched by identity; read and replaced as one tuple (threads).
_last_rate: tuple[Decimal, Decimal | None] = (Decimal("NaN"), None)
# The last leverage object seen equal to ONE: ``leverage is _unit`` then says ``== ONE``.
_unit: Decimal = ONE

UNLIMITED: Margin | None = None
"""Pass as an account's margin to switch the check off (tests of matching alone)."""

FillGuard = Callable[..., tuple[Decimal, str]]
"""``(order, quantity, price, fee_bps, pending_qty, pending_cash) -> (allowed, reason)``: how
much of ``quantity`` may fill at ``price``; ``reason`` is set when less than all of it may.
``pending_*`` are the fills of the current venue call the portfolio has not seen yet."""


@dataclass(frozen=True, slots=True)
class Exposure:
    """The account as the buying-power rule sees it when one symbol trades at ``price``."""

    cash: Decimal
    held: Decimal  # signed quantity in the traded symbol
    other_net: Decimal  # Σ signed value of every other position
    other_gross: Decimal  # Σ |value| of every other position


def affordable_quantity(
    exposure: Exposure, buy: bool, price: Decimal, fee_bps: Decimal, margin: Margin
) -> Decimal:
    """Return the largest quantity the account may trade (reductions of the position always)."""
    held = exposure.held
    closing = -held if buy and held < 0 else held if not buy and held > 0 else ZERO
    lev, rate = margin.leverage, fee_bps / BPS
    equity = exposure.cash + exposure.other_net + held * price
    # gross after = other_gross + (|held| − 2·closing + x)·price ≤ lev · (equity − x·price·rate)
    room = lev * equity - exposure.other_gross - (abs(held) - 2 * closing) * price
    if room <= 0 or price <= 0:
        return closing
    best = floor_to_step(room / (price * (ONE + lev * rate)), margin.step)
    # Decimal division rounds to 28 digits: confirm the floored figure with the exact fee.
    while best > closing and not _fits(exposure, buy, best, price, fee_bps, margin):
        best -= margin.step
    return best if best > closing else closing


def _fits(
    exposure: Exposure, buy: bool, qty: Decimal, price: Decimal, fee_bps: Decimal, margin: Margin
) -> bool:
    return fits(
        exposure.cash + exposure.other_net,
        exposure.held,
        exposure.other_gross,
        buy,
        qty,
        price,
        fee_bps,
        margin.leverage,
    )


def fits(
    funds: Decimal,
    held: Decimal,
    other_gross: Decimal,
    buy: bool,
    qty: Decimal,
    price: Decimal,
    fee_bps: Decimal,
    leverage: Decimal,
) -> bool:
    """Return True if buying (``buy``) or selling ``qty`` at ``price`` keeps gross exposure
    within ``leverage`` × equity after the fee as the venue charges it (rounding included).

    ``funds`` is cash plus the net value of every other position, ``held`` the signed position
    in the traded symbol, ``other_gross`` Σ |value| of the other positions.
    """
    global _last_rate, _unit
    if leverage is not _unit and leverage == ONE:
        _unit = leverage  # one Decimal comparison per leverage object, not per call
    if leverage is _unit and not held and not other_gross:
        # The hot entry: nothing held, 1x. The sums below with the zero terms left out (the
        # same values: the gross is the order's notional, the funds are all there is).
        gross = qty * price
        known, rate = _last_rate  # ``exact_rate(fee_bps)``, remembered here: no call
        if fee_bps is not known:
            rate = exact_rate(fee_bps)
            _last_rate = (fee_bps, rate)
        # ``rate``: the same value as ``gross * fee_bps / BPS``, no division.
        slack = funds - (gross * fee_bps / BPS if rate is None else gross * rate) - gross
        # Beyond the fee's rounding (at most half of FEE_STEP) the sign of ``slack`` decides.
        if slack > FEE_STEP:
            return True
        if slack < _MINUS_FEE_STEP:
            return False
        return gross <= funds - fee_for(qty, price, fee_bps)
    after = held + qty if buy else held - qty
    before_fee = funds + held * price
    gross = other_gross + (after if after >= ZERO else -after) * price
    if leverage == ONE:  # the default: no multiplications by one on the hot path
        slack = before_fee - qty * price * fee_bps / BPS - gross
        if slack > FEE_STEP:  # the fee's rounding (at most half of FEE_STEP) cannot change it
            return True
        if slack < _MINUS_FEE_STEP:
            return False
        return gross <= before_fee - fee_for(qty, price, fee_bps)
    slack = leverage * (before_fee - qty * price * fee_bps / BPS) - gross
    if slack > leverage * FEE_STEP or slack < -leverage * FEE_STEP:
        return slack > ZERO
    # A hair from the limit: judge with the fee as the venue will charge it, rounded.
    return gross <= leverage * (before_fee - fee_for(qty, price, fee_bps))


def cap_quantity(
    exposure: Exposure,
    buy: bool,
    quantity: Decimal,
    price: Decimal,
    fee_bps: Decimal,
    margin: Margin,
) -> tuple[Decimal, str]:
    """Return how much of ``quantity`` the margin allows and, when not all, why."""
    held = exposure.held
    if (held < 0 if buy else held > 0) and quantity <= abs(held):
        return quantity, ""  # only shrinks the position: always allowed
    if _fits(exposure, buy, quantity, price, fee_bps, margin):
        return quantity, ""  # the common case: one exact check, no search
    allowed = affordable_quantity(exposure, buy, price, fee_bps, margin)
    if allowed >= quantity:
        return quantity, ""
    reason = (
        f"buying power: {quantity} at {price} needs more than the account has at "
        f"{margin.leverage}x; affordable {allowed}"
    )
    if margin.policy is BuyingPowerPolicy.REJECT:
        return ZERO, reason
    return allowed, reason


__all__ = [
    "UNLIMITED",
    "BuyingPowerPolicy",
    "Exposure",
    "FillGuard",
    "Margin",
    "affordable_quantity",
    "cap_quantity",
    "fits",
]
