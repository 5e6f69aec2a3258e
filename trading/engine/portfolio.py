"""Portfolio accounting: cash, signed positions, average-cost P&L, exposure, daily and peak equity.

Each position keeps its signed *cost basis* (quantity × average entry). Adding re-averages by
adding ``quantity × price`` to it; reducing removes the closed fraction of the basis and realises
``proceeds − removed basis``; flipping closes the whole basis and opens the rest at the fill
price. The closed fraction is the only division: it is rounded to ``BASIS_QUANTUM`` (1e-12 quote
units) so every later sum stays within Decimal's 28 digits. Because the removed basis is
subtracted from the position exactly as it is credited to realised P&L,
``equity == deposits + realized + unrealized − fees`` holds exactly, and a position that goes
flat has realised exactly its cash flows. Realised P&L is gross of fees (``fees`` is
tracked separately; ``net_pnl`` combines them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from trading.engine.buying_power import Exposure, Margin, cap_quantity, fits
from trading.engine.constants import BASIS_QUANTUM
from trading.engine.hooks import AccountView, PositionView, TradingMode
from trading.engine.money import ZERO, to_decimal
from trading.engine.orders import Fill, OrderSide

_ONE_DAY = timedelta(days=1)
_INF = float("inf")
_DAWN = datetime.min.replace(tzinfo=UTC)  # before any day is known: no mark is deferred early
_BELOW = 1.0 - 1e-12  # shrinks a float bound past the rounding of its division and of the use
_BUY = OrderSide.BUY  # as a module constant: cheaper than the Enum class attribute


def _next_day_start(ts: datetime) -> datetime:
    utc = ts.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC) + _ONE_DAY


@dataclass(slots=True)
class Position:
    """A signed position in one symbol with its cost basis and realised P&L."""

    symbol: str
    quantity: Decimal = ZERO
    cost_basis: Decimal = ZERO  # signed: quantity × average entry price
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    mark_price: Decimal | None = None

    @property
    def avg_price(self) -> Decimal:
        """Return the average entry price (zero when flat)."""
        return self.cost_basis / self.quantity if self.quantity else ZERO

    @property
    def market_value(self) -> Decimal:
        """Return signed quantity × mark (the cost basis until a mark is known)."""
        if self.mark_price is None:
            return self.cost_basis
        return self.quantity * self.mark_price

    @property
    def unrealized_pnl(self) -> Decimal:
        """Return market value minus cost basis."""
        return self.market_value - self.cost_basis

    def snapshot(self) -> PositionSnapshot:
        """Return the position as a frozen record (with its exact cost basis)."""
        return PositionSnapshot(
            self.symbol,
            self.quantity,
            self.avg_price,
            self.mark_price,
            self.realized_pnl,
            self.fees,
            self.cost_basis,
        )

    def apply(self, signed_qty: Decimal, price: Decimal) -> Decimal:
        """Apply a signed fill at ``price`` and return the P&L it realises."""
        held = self.quantity
        if held == ZERO or (held > ZERO) == (signed_qty > ZERO):
            self.cost_basis += signed_qty * price
            self.quantity = held + signed_qty
            return ZERO
        after = held + signed_qty
        if after == ZERO or (after > ZERO) == (held > ZERO):
            # Average cost: the closed fraction takes the same fraction of the basis.
            if after == ZERO:
                removed = self.cost_basis
            else:
                removed = (self.cost_basis * -signed_qty / held).quantize(BASIS_QUANTUM)
            realized = -signed_qty * price - removed
            self.cost_basis -= removed
        else:
            # Flip: close all of ``held`` at ``price``, open the rest at ``price``.
            realized = held * price - self.cost_basis
            self.cost_basis = after * price
        self.quantity = after
        self.realized_pnl += realized
        return realized


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """A position as stored or reported; also the input of ``Portfolio.restore``."""

    symbol: str
    quantity: Decimal
    avg_price: Decimal
    mark_price: Decimal | None = None
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    # The exact signed cost basis; quantity × avg_price loses digits once avg_price is rounded
    # to the stored scale, and a restart must go on from the exact figure.
    cost_basis: Decimal | None = None

    @property
    def market_value(self) -> Decimal:
        """Return signed quantity × mark (× average entry when no mark)."""
        mark = self.avg_price if self.mark_price is None else self.mark_price
        return self.quantity * mark

    @property
    def unrealized_pnl(self) -> Decimal:
        """Return (mark − average entry) × quantity."""
        return self.market_value - self.quantity * self.avg_price


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """Point-in-time account figures (what the ORM's PortfolioSnapshot row stores)."""

    account: str
    ts: datetime | None
    cash: Decimal
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    day_start_equity: Decimal
    peak_equity: Decimal
    positions: tuple[PositionSnapshot, ...] = ()

    @property
    def daily_pnl(self) -> Decimal:
        """Return equity minus the day's starting equity."""
        return self.equity - self.day_start_equity

    @property
    def drawdown(self) -> Decimal:
        """Return peak equity minus equity (never negative)."""
        return max(ZERO, self.peak_equity - self.equity)


class Portfolio:
    """One account's cash and positions, updated by fills and marks (exact Decimal).

    Marks from market data (``mark_at``, a float such as a bar's close) are applied lazily when
    they cannot move a figure but the mark itself: a flat position's always, and the only open
    position's while the equity it gives stays below the peak (judged in floats with a margin
    far above their rounding). Every read of a figure (equity, exposure, views, snapshots, a
    fill) first applies what is pending (``equity`` what can move it: a flat position's mark
    waits), so what is read is exactly what applying every mark at once gives; a backtest's bars
    then need no Decimal work while nothing happens.
    """

    __slots__ = (
        "_cash",
        "_cash_f",
        "_day_end",
        "_equity",
        "_equity_f",
        "_headroom",
        "_market_value",
        "_peak",
        "_peak_f",
        "_solo",
        "_solo_qty",
        "account",
        "day_start_equity",
        "defer_below",
        "defer_until",
        "deferred_marks",
        "deposits",
        "fees",
        "margin",
        "positions",
        "realized_pnl",
    )

    def __init__(
        self,
        account: str,
        cash: Decimal,
        *,
        ts: datetime | None = None,
        margin: Margin | None = Margin(),  # frozen: one default shared safely
    ) -> None:
        self.account = account
        self.margin = margin  # buying power; None switches the check off
        self._cash = cash
        self.deposits = cash  # net cash put in; the P&L identity is measured against it
        self.positions: dict[str, Position] = {}
        self.realized_pnl = ZERO
        self.fees = ZERO
        self._peak = cash
        self._peak_f: float | None = None  # float(self._peak), once asked for
        self.day_start_equity = cash
        self._market_value = ZERO  # Σ position market values, kept incrementally
        self._equity: Decimal | None = None  # cash + market value, once computed
        self._equity_f: float | None = None  # float(cash + market value) once asked for
        # Latest market prices not yet applied (``mark_at``): symbol -> float.
        self.deferred_marks: dict[str, float] = {}
        # What lets a caller that marks every bar (``OrderManager.on_bar``) defer a mark itself,
        # as ``mark_at`` would, without the call: per symbol with a position, a price below which
        # its mark only goes to ``deferred_marks`` as long as the mark's time is before
        # ``defer_until`` (no day rolls): infinity for a flat position; for the only open
        # position, when long, its headroom over its quantity (``_set_headroom``); none for the
        # others (``mark_at`` decides).
        self.defer_below: dict[str, float] = {}
        self.defer_until = _DAWN
        # The only open position (None: none or several), its quantity as a float, and the
        # value it must stay under for its marks to be deferred (``_refresh_headroom``).
        self._solo: str | None = None
        self._solo_qty = self._headroom = 0.0
        self._cash_f = float(cash)
        self._day_end = _next_day_start(ts) if ts is not None else None
        self.defer_until = self._day_end or _DAWN

    # ----------------------------------------------------------------- reads

    @property
    def cash(self) -> Decimal:
        """Return the account's cash."""
        return self._cash

    @cash.setter
    def cash(self, value: Decimal) -> None:
        self._cash = value
        self._equity = self._equity_f = None
        self._refresh_headroom()

    @property
    def peak_equity(self) -> Decimal:
        """Return the highest equity seen."""
        return self._peak

    @peak_equity.setter
    def peak_equity(self, value: Decimal) -> None:
        self._peak = value
        self._peak_f = None
        self._refresh_headroom()

    @property
    def equity(self) -> Decimal:
        """Return cash plus the market value of every position."""
        deferred = self.deferred_marks
        if deferred and self._solo in deferred:  # flat positions' marks move no figure: they wait
            self._settle_marks()
        equity = self._equity
        if equity is None:
            equity = self._equity = self._cash + self._market_value
        return equity

    @property
    def unrealized_pnl(self) -> Decimal:
        """Return the sum of positions' unrealised P&L."""
        if self.deferred_marks:
            self._settle_marks()
        return sum((p.unrealized_pnl for p in self.positions.values()), ZERO)

    @property
    def net_pnl(self) -> Decimal:
        """Return realised plus unrealised P&L minus fees."""
        return self.realized_pnl + self.unrealized_pnl - self.fees

    @property
    def gross_exposure(self) -> Decimal:
        """Return the sum of absolute position values."""
        if self.deferred_marks:
            self._settle_marks()
        return sum((abs(p.market_value) for p in self.positions.values()), ZERO)

    @property
    def net_exposure(self) -> Decimal:
        """Return the sum of signed position values."""
        if self.deferred_marks:
            self._settle_marks()
        return self._market_value

    @property
    def daily_pnl(self) -> Decimal:
        """Return equity minus the equity at the start of the current UTC day."""
        return self.equity - self.day_start_equity

    @property
    def drawdown(self) -> Decimal:
        """Return peak equity minus equity (never negative)."""
        return max(ZERO, self._peak - self.equity)

    def equity_estimate(self) -> float:
        """Return the equity as a float, each position at its latest mark (deferred ones too).

        For equity curves: no Decimal work while a mark is deferred, and within a few ulps of
        ``float(self.equity)`` (exactly it otherwise).
        """
        solo = self._solo
        if solo is not None:
            price = self.deferred_marks.get(solo)
            if price is not None:  # the only open position: every other one is worth zero
                return self._cash_f + self._solo_qty * price
        equity = self._equity_f  # deferred flat marks move nothing
        if equity is None:
            equity = self._equity_f = float(self._cash + self._market_value)
        return equity

    def quantity(self, symbol: str) -> Decimal:
        """Return the signed position quantity in ``symbol`` (zero if none)."""
        pos = self.positions.get(symbol)
        return pos.quantity if pos is not None else ZERO

    def position(self, symbol: str) -> Position | None:
        """Return the position record for ``symbol``, if any fill touched it."""
        if self.deferred_marks:
            self._settle_marks()
        return self.positions.get(symbol)

    def exposure(
        self, symbol: str, price: Decimal, pending_qty: Decimal = ZERO, pending_cash: Decimal = ZERO
    ) -> Exposure:
        """Return cash and exposure with ``symbol`` valued at ``price`` (plus unseen fills)."""
        if self.deferred_marks:
            self._settle_marks()
        other_net = other_gross = ZERO
        held = pending_qty
        for name, pos in self.positions.items():
            if name == symbol:
                held += pos.quantity
            elif pos.quantity:
                value = pos.market_value
                other_net += value
                other_gross += value if value >= ZERO else -value
        return Exposure(self._cash + pending_cash, held, other_net, other_gross)

    def cap_order(
        self,
        symbol: str,
        buy: bool,
        quantity: Decimal,
        price: Decimal,
        fee_bps: Decimal = ZERO,
        pending_qty: Decimal = ZERO,
        pending_cash: Decimal = ZERO,
    ) -> tuple[Decimal, str]:
        """Return how much of an order the account's buying power allows at ``price``, and why
        not all of it when it does not."""
        margin = self.margin
        if margin is None:
            return quantity, ""
        pos = self.positions.get(symbol)
        held = ZERO if pos is None else pos.quantity
        if pending_qty:  # fills of the venue call in progress (seldom: sums only when there)
            held += pending_qty
        # Only shrinks the position: the hot exit path stays cheap (one comparison per side).
        if buy:
            if held and held < ZERO and quantity <= -held:  # (a zero: no comparison)
                return quantity, ""
        elif held > ZERO and quantity <= held:
            return quantity, ""
        funds = self._cash + pending_cash if pending_cash else self._cash
        if len(self.positions) <= (pos is not None) and fits(
            funds, held, ZERO, buy, quantity, price, fee_bps, margin.leverage
        ):
            return quantity, ""  # one symbol and the order fits: the hot entry path, no search
        exposure = self.exposure(symbol, price, pending_qty, pending_cash)
        return cap_quantity(exposure, buy, quantity, price, fee_bps, margin)

    # ----------------------------------------------------------------- writes

    def apply_fill(self, fill: Fill) -> Decimal:
        """Apply ``fill`` to cash, position, fees and P&L; return the P&L it realised."""
        ts = fill.ts
        day_end = self._day_end
        if day_end is None or ts >= day_end:
            self.roll_day(ts)
        symbol, price = fill.symbol, fill.price
        positions = self.positions
        pos = positions.get(symbol)
        # The position's market value before the fill, when settling its mark gave it.
        before = self._settle_for(pos, symbol) if self.deferred_marks else None
        if pos is None:
            pos = positions[symbol] = Position(symbol, mark_price=price)
        mark = pos.mark_price  # market value is quantity x mark
        if mark is None:
            mark = pos.mark_price = price
        qty, fee = fill.quantity, fill.fee
        signed = qty if fill.side is _BUY else -qty
        held = pos.quantity
        if before is None:
            before = held * mark
        flow = signed * price  # the cash the fill moves (before its fee)
        # ``Position.apply``, written out but for partial closes and flips.
        if not held:  # opens: the basis grows by the same flow
            pos.cost_basis += flow
            pos.quantity = after = held + signed
            realized = ZERO
        else:
            after = held + signed
            if not after:  # closes all of it: the whole basis goes (-flow is -signed x price)
                removed = pos.cost_basis
                realized = -flow - removed
                pos.cost_basis -= removed
                pos.quantity = after
                pos.realized_pnl += realized
            elif (held > ZERO) == (signed > ZERO):  # adds
                pos.cost_basis += flow
                pos.quantity = after
                realized = ZERO
            else:
                realized = pos.apply(signed, price)
        self._market_value += after * mark - before
        self._cash = cash = self._cash - (flow + fee)
        self._equity_f = None
        self.fees += fee
        pos.fees += fee
        if realized:  # entries realise nothing
            self.realized_pnl += realized
        # ``_update_peak`` (the headroom is redone below), the equity kept for ``equity``
        self._equity = equity = cash + self._market_value
        if equity > self._peak:
            self._peak = equity
            self._peak_f = None
        if len(positions) > 1:
            self._refresh_headroom()
        elif after:  # ``_refresh_headroom`` of the only position, written out
            self._solo = symbol
            self._cash_f = cash_f = float(cash)
            self._solo_qty = qty = float(after)
            peak = self._peak_f
            peak = self._peak_f = float(self._peak) if peak is None else peak
            self._headroom = headroom = peak - cash_f - 1e-9 * (abs(peak) + abs(cash_f) + 1.0)
            self.defer_below = (
                {symbol: headroom / qty * _BELOW} if qty > 0.0 and headroom > 0.0 else {}
            )
        else:
            self._solo = None
            self.defer_below = {symbol: _INF}  # a flat position's mark moves no figure
        return realized

    def _settle_for(self, pos: Position | None, symbol: str) -> Decimal | None:
        """``_settle_marks`` before a fill in ``symbol`` (``pos``: its position, if any); when
        the fill's own mark is the only one, written out and returning the position's market
        value at it (the fill's ``before``: one product fewer), else None."""
        deferred = self.deferred_marks
        if pos is None or len(deferred) != 1 or symbol not in deferred:
            self._settle_marks()
            return None
        self.deferred_marks = {}
        close = deferred[symbol]
        mark = to_decimal(close)
        held = pos.quantity
        if not held:
            pos.mark_price = mark  # a flat position's: moves no figure
            return None
        old = pos.mark_price
        was = pos.cost_basis if old is None else held * old
        pos.mark_price = mark
        value = held * mark
        self._market_value += value - was
        self._equity = self._equity_f = None
        if symbol != self._solo or not self._solo_qty * close < self._headroom:
            self._update_peak()  # else it cannot raise the peak (see the class docstring)
        return value

    def mark(self, symbol: str, price: Decimal, ts: datetime | None = None) -> None:
        """Set the mark price of ``symbol`` (a no-op for symbols never traded)."""
        if ts is not None:
            self.roll_day(ts)
        pos = self.positions.get(symbol)
        if pos is None:
            return
        if self.deferred_marks:
            self.deferred_marks.pop(symbol, None)  # superseded
        old = pos.mark_price  # ``market_value`` before and after, without the property calls
        before = pos.cost_basis if old is None else pos.quantity * old
        pos.mark_price = price
        self._market_value += pos.quantity * price - before
        self._equity = self._equity_f = None
        self._update_peak()

    def mark_at(self, symbol: str, price: float, ts: datetime | None = None) -> None:
        """Mark ``symbol`` at a market-data price (a float, e.g. a bar's close).

        As ``mark(symbol, to_decimal(price), ts)``, but applied only when something reads the
        account if it cannot move a figure but the mark (see the class docstring).
        """
        if ts is not None:
            day_end = self._day_end
            if day_end is None or ts >= day_end:
                self.roll_day(ts)
        pos = self.positions.get(symbol)
        if pos is None:
            return
        if pos.quantity and (symbol != self._solo or not self._solo_qty * price < self._headroom):
            self.mark(symbol, to_decimal(price))  # may raise the peak: exactly, at once
        else:
            self.deferred_marks[symbol] = price

    def _settle_marks(self) -> None:
        """Apply the marks ``mark_at`` deferred."""
        unmarked, self.deferred_marks = self.deferred_marks, {}
        positions = self.positions
        for symbol, price in unmarked.items():
            pos = positions.get(symbol)
            if pos is None:
                continue
            quantity = pos.quantity
            if quantity:  # ``mark(symbol, to_decimal(price))``, written out (a fill settles it)
                old = pos.mark_price
                before = pos.cost_basis if old is None else quantity * old
                pos.mark_price = mark = to_decimal(price)
                self._market_value += quantity * mark - before
                self._equity = self._equity_f = None
                self._update_peak()
            else:
                pos.mark_price = to_decimal(price)  # a flat position's: moves no figure

    def _refresh_headroom(self) -> None:
        """Recompute which position's marks may be deferred and up to what value.

        With exactly one open position, a mark is deferred while quantity × price stays below
        ``peak − cash`` less a margin (1e-9 of the magnitudes, some ten million times the float
        rounding of that comparison): such a mark cannot raise the peak, and nothing else it
        changes is read before ``_settle_marks``.
        """
        solo, several, held = None, False, ZERO
        below: dict[str, float] = {}
        for symbol, pos in self.positions.items():
            quantity = pos.quantity
            if not quantity:
                below[symbol] = _INF  # a flat position's mark moves no figure
            elif solo is None and not several:
                solo, held = symbol, quantity
            else:
                solo, several = None, True
        self.defer_below = below
        self._solo = solo
        if solo is None:
            return
        self._cash_f = cash = float(self._cash)
        self._solo_qty = qty = float(held)
        peak = self._peak_f
        if peak is None:
            peak = self._peak_f = float(self._peak)
        # ``_set_headroom(peak)``, written out (once a fill)
        self._headroom = headroom = peak - cash - 1e-9 * (abs(peak) + abs(cash) + 1.0)
        if qty > 0.0 and headroom > 0.0:
            below[solo] = headroom / qty * _BELOW

    def _set_headroom(self, peak: float) -> None:
        cash = self._cash_f
        self._headroom = headroom = peak - cash - 1e-9 * (abs(peak) + abs(cash) + 1.0)
        # ``defer_below``: a long position's price under headroom / quantity, shrunk by 1e-12,
        # gives quantity × price < headroom in floats too (their rounding is ~1e-16).
        qty = self._solo_qty
        if qty > 0.0 and headroom > 0.0:
            self.defer_below[self._solo] = headroom / qty * _BELOW  # type: ignore[index]
        else:
            self.defer_below.pop(self._solo, None)  # type: ignore[arg-type]

    def roll_day(self, ts: datetime) -> bool:
        """Start a new UTC day if ``ts`` is past the current one; return True if it rolled."""
        day_end = self._day_end
        if day_end is None:
            self._day_end = self.defer_until = _next_day_start(ts)
            return False
        if ts < day_end:
            return False
        # Equity at the roll still uses the previous day's marks: that is the day's open.
        self.day_start_equity = self.equity
        self._day_end = self.defer_until = _next_day_start(ts)
        return True

    def adjust_cash(self, amount: Decimal) -> None:
        """Deposit (positive) or withdraw (negative) cash outside trading."""
        self._cash += amount
        self._equity = self._equity_f = None
        self.deposits += amount
        self.day_start_equity += amount
        self._peak += amount
        self._peak_f = None
        self._refresh_headroom()

    def restore(
        self,
        *,
        cash: Decimal,
        positions: Iterable[PositionSnapshot] = (),
        realized_pnl: Decimal | None = None,
        fees: Decimal | None = None,
        peak_equity: Decimal | None = None,
        day_start_equity: Decimal | None = None,
        ts: datetime | None = None,
    ) -> None:
        """Replace the state with stored figures (crash recovery)."""
        self.positions = {}
        self.deferred_marks = {}
        for snap in positions:
            self.positions[snap.symbol] = Position(
                snap.symbol,
                snap.quantity,
                snap.cost_basis if snap.cost_basis is not None else snap.quantity * snap.avg_price,
                snap.realized_pnl,
                snap.fees,
                snap.mark_price,
            )
        self._cash = cash
        self._market_value = sum((p.market_value for p in self.positions.values()), ZERO)
        self._equity = self._equity_f = None
        self.realized_pnl = (
            realized_pnl
            if realized_pnl is not None
            else sum((p.realized_pnl for p in self.positions.values()), ZERO)
        )
        self.fees = (
            fees if fees is not None else sum((p.fees for p in self.positions.values()), ZERO)
        )
        # Rebase deposits so the P&L identity keeps holding from the restored state onwards.
        self.deposits = self.equity - self.realized_pnl - self.unrealized_pnl + self.fees
        equity = self.equity
        self._peak = max(peak_equity, equity) if peak_equity is not None else equity
        self._peak_f = None
        self.day_start_equity = day_start_equity if day_start_equity is not None else equity
        self._day_end = _next_day_start(ts) if ts is not None else None
        self.defer_until = self._day_end or _DAWN
        self._refresh_headroom()

    def _update_peak(self) -> None:
        self._equity = equity = self._cash + self._market_value
        if equity > self._peak:
            self._peak = equity
            self._peak_f = None
            if self._solo is not None:
                self._peak_f = peak = float(equity)
                self._set_headroom(peak)  # cash did not move (fills refresh it all)

    # ----------------------------------------------------------------- views

    def view(self, mode: TradingMode = TradingMode.ACTIVE, open_orders: int = 0) -> AccountView:
        """Return the read-only view pre-trade checks consume."""
        if self.deferred_marks:
            self._settle_marks()
        positions = {
            s: PositionView(
                s,
                p.quantity,
                p.avg_price,
                p.mark_price if p.mark_price is not None else p.avg_price,
            )
            for s, p in self.positions.items()
            if p.quantity
        }
        return AccountView(
            name=self.account,
            cash=self._cash,
            equity=self.equity,
            peak_equity=self._peak,
            day_start_equity=self.day_start_equity,
            positions=positions,
            open_orders=open_orders,
            mode=mode,
        )

    def snapshot(self, ts: datetime | None = None) -> PortfolioSnapshot:
        """Return a frozen snapshot of the account (positions that are open or realised P&L)."""
        if self.deferred_marks:
            self._settle_marks()
        positions = tuple(p.snapshot() for p in self.positions.values())
        return PortfolioSnapshot(
            account=self.account,
            ts=ts,
            cash=self._cash,
            equity=self.equity,
            realized_pnl=self.realized_pnl,
            unrealized_pnl=self.unrealized_pnl,
            fees=self.fees,
            gross_exposure=self.gross_exposure,
            net_exposure=self.net_exposure,
            day_start_equity=self.day_start_equity,
            peak_equity=self._peak,
            positions=positions,
        )
