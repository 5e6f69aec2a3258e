"""Vectorised backtests of the built-in signal strategies and users' ``SignalStrategy`` classes.

The strategies' decisions are computed for all bars at once with numpy (``indicators``: the
incremental SMA and Bollinger bands reproduced bit for bit, Wilder's RSI); the trading itself
loops only over the bars where the wanted position changes, applying the event-driven rules:
decide on a bar's close, size ``fraction`` of equity at that close rounded down to ``lot``, fill
at the next bar's open (or at the close), pay the taker fee. The account's buying power
(``trading.engine.buying_power``) cuts each order as the OMS does: at the signal close when it is
submitted, then at its fill price. For the strategies it supports it gives the same trades as
``runner.BacktestRunner`` (tested); it assumes orders fill completely otherwise, so fill models
with books or volume caps, and impact slippage, are not available here.

Users' signal-style strategies (``trading.engine.signal_strategy.SignalStrategy``, by name or
``file.py:ClassName``) run from their decision table: their three functions run once over the
bars, then ``simulate_table`` walks the table as the event-driven replay does, from each bar
where it acts for the side actually held to the next (a reversal is a close then an entry, two
fills on the same bar, as ``SignalStrategy`` sends them). Tables with ``size``, ``stop_loss`` or
``take_profit`` columns are refused (event-driven only).

Single symbol only; floats throughout (the exact Decimal accounting is the event-driven path's).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from backtesting.engine.calendars import Calendar, elapsed_years
from backtesting.engine.errors import BacktestConfigError, UnsupportedStrategyError
from backtesting.engine.fills import FillModel, FixedBps, NoSlippage, tidy_price
from backtesting.engine.metrics import summarize
from backtesting.engine.runner import BacktestConfig, BarData, prepare_bars, run_calendar
from marketdata.engine.events import TIMEFRAME_SECONDS
from trading.engine.buying_power import BuyingPowerPolicy
from trading.engine.errors import StrategyConfigError
from trading.engine.money import FEE_STEP, fee_for
from trading.engine.series import IndicatorCache
from trading.engine.signal_strategy import SignalStrategy
from trading.engine.strategies import STRATEGIES, resolve_strategy
from trading.engine.strategy import Strategy

SUPPORTED = ("sma_cross", "rsi_reversion", "bollinger_breakout")
FEE_DIGITS = -FEE_STEP.as_tuple().exponent  # type: ignore[operator]
_FEE_SCALE = 10.0**FEE_DIGITS
_TIE_RELATIVE = 1e-15  # ~9 ulps: the float error of qty × price × rate, with room


@dataclass(frozen=True, slots=True)
class VectorTrade:
    """One round trip of the vectorised path (bar indices and float prices)."""

    side: str
    quantity: float
    entry_index: int
    entry_price: float
    exit_index: int | None
    exit_price: float | None
    pnl: float  # net of both fees; open trades marked at the last close
    fees: float


@dataclass(frozen=True, slots=True)
class Ledger:
    """Every fill of a vectorised run, as arrays (position only jumps flat/long/short)."""

    bars: np.ndarray  # bar index of each fill
    prices: np.ndarray
    deltas: np.ndarray  # signed quantity
    fees: np.ndarray
    cash: np.ndarray  # cash after the fill
    position: np.ndarray  # position after the fill
    initial_cash: float

    def round_trips(self, last_close: float) -> dict[str, np.ndarray]:
        """Return round trips as arrays: each fill that leaves a position opens one."""
        pos, absd = self.position, np.abs(self.deltas)
        opened = np.flatnonzero(pos != 0)
        qty = np.abs(pos[opened])
        with np.errstate(invalid="ignore", divide="ignore"):
            entry_fee = np.where(absd[opened] > 0, self.fees[opened] * qty / absd[opened], 0.0)
        closer = opened + 1
        closed = closer < pos.size
        safe = np.minimum(closer, pos.size - 1)
        exit_price = np.where(closed, self.prices[safe], last_close)
        exit_fee = np.where(closed, self.fees[safe] * qty / np.where(closed, absd[safe], 1.0), 0.0)
        sign = np.sign(pos[opened])
        pnl = sign * qty * (exit_price - self.prices[opened]) - entry_fee - exit_fee
        return {
            "entry": self.bars[opened],
            "exit": np.where(closed, self.bars[safe], -1),
            "qty": qty,
            "sign": sign,
            "entry_price": self.prices[opened],
            "exit_price": exit_price,
            "closed": closed,
            "pnl": pnl,
            "fees": entry_fee + exit_fee,
        }

    def in_market(self, n: int, lag: int = 0) -> np.ndarray:
        """Return, for each of ``n`` bars, whether a position is held after it (a fill on bar
        ``j`` counts from bar ``j + lag``)."""
        starts = self.bars + lag
        keep = starts < n
        starts, held = starts[keep], self.position[keep] != 0
        if starts.size == 0:
            return np.zeros(n, dtype=bool)
        lengths = np.diff(np.append(starts, n))
        return np.concatenate([np.zeros(int(starts[0]), dtype=bool), np.repeat(held, lengths)])

    def equity(self, close: np.ndarray) -> np.ndarray:
        """Return cash + position × close after each bar."""
        n = close.size
        if self.bars.size == 0:
            return np.full(n, self.initial_cash)
        starts = self.bars
        lengths = np.diff(np.append(starts, n))
        head = starts[0]
        cash = np.concatenate([np.full(head, self.initial_cash), np.repeat(self.cash, lengths)])
        pos = np.concatenate([np.zeros(head), np.repeat(self.position, lengths)])
        return cash + pos * close


class VectorResult:
    """Outcome of one vectorised run; the equity curve and trade objects are built on demand."""

    def __init__(
        self, ledger: Ledger, close: np.ndarray, ts: np.ndarray, fill_offset_ns: int = 0
    ) -> None:
        self.ledger = ledger
        self.ts = ts  # int64 ns bar starts
        self.fill_offset_ns = fill_offset_ns  # fills at bar i happen at ts[i] + offset
        self.metrics: dict[str, float] = {}
        self.calendar: Calendar | None = None  # what the metrics annualised with
        self._close = close
        self._trips = ledger.round_trips(float(close[-1]))
        self._equity: np.ndarray | None = None

    @property
    def equity(self) -> np.ndarray:
        """Return the equity after each bar's close."""
        if self._equity is None:
            self._equity = self.ledger.equity(self._close)
        return self._equity

    @property
    def final_equity(self) -> float:
        """Return the equity after the last bar."""
        ledger = self.ledger
        if ledger.bars.size == 0:
            return ledger.initial_cash
        return float(ledger.cash[-1] + ledger.position[-1] * self._close[-1])

    @property
    def trade_arrays(self) -> dict[str, np.ndarray]:
        """Return the round trips as arrays (entry/exit bar, qty, prices, pnl, fees, closed)."""
        return self._trips

    @property
    def n_closed(self) -> int:
        """Return the number of closed round trips."""
        return int(self._trips["closed"].sum())

    @property
    def trades(self) -> list[VectorTrade]:
        """Return the round trips as objects, by entry."""
        t = self._trips
        return [
            VectorTrade(
                "long" if sign > 0 else "short",
                qty,
                entry,
                entry_price,
                exit_ if closed else None,
                exit_price if closed else None,
                pnl,
                fees,
            )
            for entry, exit_, qty, sign, entry_price, exit_price, closed, pnl, fees in zip(
                t["entry"].tolist(),
                t["exit"].tolist(),
                t["qty"].tolist(),
                t["sign"].tolist(),
                t["entry_price"].tolist(),
                t["exit_price"].tolist(),
                t["closed"].tolist(),
                t["pnl"].tolist(),
                t["fees"].tolist(),
                strict=True,
            )
        ]

    @property
    def closed_trades(self) -> list[VectorTrade]:
        """Return the trades that closed."""
        return [t for t in self.trades if t.exit_index is not None]

    def timestamps(self, index: int | None) -> datetime | None:
        """Return the UTC time of a fill on bar ``index`` (its open, or its close)."""
        if index is None:
            return None
        return pd.Timestamp(int(self.ts[index]) + self.fill_offset_ns, tz=UTC).to_pydatetime()


# ----------------------------------------------------------------- signals


Signals = tuple[np.ndarray, np.ndarray]
"""(state, entries): the position direction wanted after each bar (NaN before the first
decision), and the direction of each bar's entry decision (NaN where the strategy does not try
to enter). An entry sized to zero (too little equity) is retried on later entry decisions."""


def _flat_decisions(name: str, cache: IndicatorCache, params: Mapping[str, Any]) -> np.ndarray:
    """Return the strategy's own decisions while flat (the middle row of its decision table)."""
    return STRATEGIES[name](**params).decision_table(cache)[1]


def sma_cross_targets(cache: IndicatorCache, params: Mapping[str, Any]) -> Signals:
    """Return the signals of ``SmaCross``: it decides on every bar with both averages."""
    state = _flat_decisions("sma_cross", cache, params)
    return state, state


def rsi_targets(cache: IndicatorCache, params: Mapping[str, Any]) -> Signals:
    """Return the signals of ``RsiReversion``: enter below ``lower``, exit above ``upper``."""
    state = _flat_decisions("rsi_reversion", cache, params)
    return state, state


def bollinger_targets(cache: IndicatorCache, params: Mapping[str, Any]) -> Signals:
    """Return the signals of ``BollingerBreakout`` (its exits depend on the position held)."""
    entries = _flat_decisions("bollinger_breakout", cache, params)
    mean, _ = cache.bands(int(params["period"]))
    close = cache.close
    idx = np.arange(close.size)
    with np.errstate(invalid="ignore"):
        up, down = entries == 1.0, entries == -1.0
        below, above = close < mean, close > mean
    last = {
        name: np.maximum.accumulate(np.where(flags, idx, -1))
        for name, flags in (("up", up), ("down", down), ("below", below), ("above", above))
    }
    lu, ld = last["up"], last["down"]
    state = np.where(
        lu > ld,
        np.where(last["below"] > lu, 0.0, 1.0),
        np.where(ld > lu, np.where(last["above"] > ld, 0.0, -1.0), np.nan),
    )
    return state, entries


SIGNALS: dict[str, Callable[[IndicatorCache, Mapping[str, Any]], Signals]] = {
    "sma_cross": sma_cross_targets,
    "rsi_reversion": rsi_targets,
    "bollinger_breakout": bollinger_targets,
}


def vectorised_class(name: str) -> type[Strategy]:
    """Return the class the vectorised path runs for ``name``: a built-in of ``SUPPORTED`` or a
    user's ``SignalStrategy`` (by name or ``file.py:ClassName``); raise if it cannot."""
    if name in SIGNALS:
        return STRATEGIES[name]
    try:
        cls = STRATEGIES[resolve_strategy(name)]
    except StrategyConfigError as exc:
        raise UnsupportedStrategyError(str(exc)) from exc
    if not issubclass(cls, SignalStrategy):
        raise UnsupportedStrategyError(
            f"the vectorised path supports {', '.join(SUPPORTED)} and signal-style strategies "
            f"(SignalStrategy), not {name!r}"
        )
    return cls


def strategy_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the strategy's defaults overlaid with ``params`` (validated by the class)."""
    strategy = vectorised_class(name)(**dict(params or {}))  # the class validates them
    return dict(strategy.params)


def user_table(cls: type[Strategy], cache: IndicatorCache, params: Mapping[str, Any]) -> np.ndarray:
    """Return a signal-style strategy's decision table over the cached bars (refusing tables
    the vectorised path cannot reproduce)."""
    table = cls(**params).decision_table(cache)
    if table is None:
        raise UnsupportedStrategyError(
            f"{cls.__name__}: size, stop_loss and take_profit columns run event-driven only"
        )
    if table.shape != (3, cache.close.size):
        raise StrategyConfigError(
            f"{cls.__name__}: its functions must keep one row per bar ({cache.close.size} bars, "
            f"got {table.shape[-1]} rows; drop nothing, fill instead)"
        )
    return table


# ----------------------------------------------------------------- simulation


@dataclass(frozen=True, slots=True)
class _Costs:
    """Fees, slippage, fill timing and sizing of a vectorised run (floats)."""

    fee: float
    fee_bps: Decimal
    slip_bps: float
    next_open: bool
    fraction: float
    lot: float
    cash: float
    leverage: float
    reject: bool  # buying-power policy: reject (else reduce) what the account cannot pay
    step: float  # reduced quantities are floored to this
    step_digits: int
    qty_digits: int  # decimals of any quantity (lots and steps): the engine's exact Decimal


def _costs(config: BacktestConfig, params: Mapping[str, Any]) -> _Costs:
    model = FillModel(config.fill_model)
    if model is FillModel.BOOK or config.volume_cap is not None:
        raise BacktestConfigError("the vectorised path supports next_open/close without a cap")
    slip = config.slippage
    if not isinstance(slip, NoSlippage | FixedBps):
        raise BacktestConfigError("the vectorised path supports fixed-bps slippage only")
    return _Costs(
        fee=float(config.taker_fee_bps) / 10_000.0,
        fee_bps=config.taker_fee_bps,
        slip_bps=slip.bps if isinstance(slip, FixedBps) else 0.0,
        next_open=model is FillModel.NEXT_OPEN,
        fraction=float(params["fraction"]),
        lot=float(params["lot"]),
        cash=float(config.initial_cash),
        leverage=float(config.leverage),
        reject=BuyingPowerPolicy(config.buying_power) is BuyingPowerPolicy.REJECT,
        step=float(config.quantity_step),
        step_digits=_decimals(config.quantity_step),
        qty_digits=max(_decimals(config.quantity_step), _decimals(params["lot"])),
    )


def _decimals(value: Any) -> int:
    """Return the number of decimals of ``value`` (0 for a whole number)."""
    return max(0, -int(Decimal(str(value)).normalize().as_tuple().exponent))


def _change_points(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the bars where the forward-filled target changes, and the new targets."""
    held = pd.Series(targets).ffill().to_numpy()
    prev = np.concatenate([[0.0], held[:-1]])
    prev = np.where(np.isnan(prev), 0.0, prev)
    change = np.flatnonzero((held != prev) & ~np.isnan(held))
    return change, held[change]


def simulate(
    signals: Signals,
    open_: np.ndarray,
    close: np.ndarray,
    costs: _Costs,
    floor_after: np.ndarray | None = None,
) -> Ledger:
    """Trade the wanted directions where they change (and retry empty entries); return fills.

    ``floor_after`` (lowest close from each bar on) lets a flat account that cannot buy one lot
    at any later price stop early.
    """
    state, entries = signals
    changes, wanted = _change_points(state)
    n = close.size
    lowest = floor_after if floor_after is not None else np.minimum.accumulate(close[::-1])[::-1]
    shift = 1 if costs.next_open else 0
    fills = (open_ if costs.next_open else close)[np.minimum(changes + shift, n - 1)].tolist()
    ends = np.append(changes[1:], n).tolist()
    account = _Account(costs, close)
    decide = account.decide
    for i, d, ref, c, end in zip(
        changes.tolist(), wanted.tolist(), fills, close[changes].tolist(), ends, strict=True
    ):
        if i + shift >= n:
            break  # a decision on the last bar has no bar left to fill in
        if not d and account.pos == 0:
            continue  # already flat
        decide(i + shift, d, c, ref)
        if d and account.pos == 0:
            if not account.can_buy(float(lowest[i])):
                break  # flat and too poor for one lot at any later price: nothing can happen
            _retry(account, entries, i + 1, end, d, open_, close, shift)
    return account.ledger()


def simulate_table(
    table: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    costs: _Costs,
    floor_after: np.ndarray | None = None,
) -> Ledger:
    """Trade a decision table (3 × bars: the direction wanted while short, flat, long, NaN for
    no change) as ``SignalStrategy.on_decision`` does, visiting only the bars where it acts for
    the side actually held; return the fills.

    An entry sized to nothing leaves the account flat, so the flat row's next decision is the
    next try (skipped ahead to the first close the cash can buy a lot at).
    """
    n = close.size
    shift = 1 if costs.next_open else 0
    fill_prices = open_ if costs.next_open else close
    lowest = floor_after if floor_after is not None else np.minimum.accumulate(close[::-1])[::-1]
    with np.errstate(invalid="ignore"):
        acting = [np.flatnonzero(~np.isnan(table[h + 1]) & (table[h + 1] != h)) for h in (-1, 0, 1)]
    lists: list[list[int] | None] = [None, None, None]  # ``acting`` as lists, when first needed
    account = _Account(costs, close)
    row, held = -1, 0
    while True:
        rows = lists[held + 1]
        if rows is None:
            rows = lists[held + 1] = acting[held + 1].tolist()
        k = bisect_right(rows, row)
        if k == len(rows) or rows[k] + shift >= n:
            break  # nothing more to do, or a decision on the last bar: no bar left to fill in
        row = rows[k]
        if held == 0:
            if not account.can_buy(float(lowest[row])):
                break  # flat and too poor for one lot at any later price: nothing can happen
            row = account.next_sizable(acting[1], k, row)
            if row < 0 or row + shift >= n:
                break
        d = table.item(held + 1, row)
        price = fill_prices.item(row + shift)
        if held and d == -held:
            account.reverse(row + shift, d, close.item(row), price)
        else:
            account.decide(row + shift, d, close.item(row), price)
        held = (account.pos > 0) - (account.pos < 0)
    return account.ledger()


def _retry(
    account: _Account,
    entries: np.ndarray,
    start: int,
    end: int,
    d: float,
    open_: np.ndarray,
    close: np.ndarray,
    shift: int,
) -> None:
    """Retry an entry that did not happen on the strategy's later entry decisions, as it does,
    until one fills (an order the buying power cuts to nothing at its fill is retried too)."""
    n = close.size
    while account.pos == 0:
        k = account.retry_bar(entries, start, end, d)
        if k is None or k + shift >= n:
            return
        price = float(open_[k + 1]) if shift else float(close[k])
        account.decide(k + shift, d, float(close[k]), price)
        start = k + 1


def _fee(qty: float, price: float, c: _Costs) -> float:
    """Return the fee as the engine charges it: rounded half-even to 1e-10 (``money.fee_for``);
    a product within float noise of a tie is rounded in Decimal, as the engine does."""
    scaled = qty * price * c.fee * _FEE_SCALE
    units = math.floor(scaled)
    # The float product is within a few ulps of the exact one, and an ulp grows with the fee:
    # 84.89834735905 (a tie) is 848983473590.5 ± 1e-4 in units of 1e-10.
    if abs(scaled - units - 0.5) > 1e-6 + scaled * _TIE_RELATIVE:
        # The nearest double to units(+1) × 1e-10, as round(raw, 10) gives, for less.
        return (units + (scaled - units > 0.5)) / _FEE_SCALE
    # The engine's exact quantity (a whole number of steps), not the float's binary noise.
    exact = Decimal(repr(round(qty, c.qty_digits)))
    return float(fee_for(exact, Decimal(repr(price)), c.fee_bps))


class _Account:
    """Cash, position and the fills of a vectorised run (floats)."""

    __slots__ = ("c", "cash", "close", "columns", "pos")

    def __init__(self, costs: _Costs, close: np.ndarray) -> None:
        self.c = costs
        self.close = close
        self.cash, self.pos = costs.cash, 0.0
        self.columns: tuple[list[float], ...] = ([], [], [], [], [], [])

    def decide(self, j: int, d: float, close: float, price: float) -> None:
        """On a close of ``close``, target direction ``d``; fill at ``price`` on bar ``j``."""
        c, pos = self.c, self.pos
        if d:
            qty = math.floor((self.cash + pos * close) * c.fraction / close / c.lot) * c.lot
            delta = d * qty - pos
            grows = delta != 0 and (pos * delta >= 0 or abs(delta) > abs(pos))
            if grows:
                delta = self.affordable(delta, close)  # the OMS's check at submission
        else:
            delta, grows = -pos, False
        if delta == 0:
            return
        if c.slip_bps:
            price = tidy_price(price * (1.0 + (1 if delta > 0 else -1) * c.slip_bps / 10_000.0))
        if grows:
            delta = self.affordable(delta, price)  # the venue's guard at the fill
            if delta == 0:
                return
        self._fill(j, delta, price)

    def reverse(self, j: int, d: float, close: float, price: float) -> None:
        """Close the position and enter the other side as ``SignalStrategy`` does: two orders
        sent on the close of ``close`` (the entry sized at that close, checked while the position
        is still held), filled at ``price`` on bar ``j`` one after the other."""
        c, pos = self.c, self.pos
        qty = math.floor((self.cash + pos * close) * c.fraction / close / c.lot) * c.lot
        entry = self.affordable(d * qty, close) if qty else 0.0  # the OMS's check at submission
        self.decide(j, 0.0, close, price)  # the close: a pure reduction
        if entry == 0:
            return
        if c.slip_bps:
            price = tidy_price(price * (1.0 + (1 if entry > 0 else -1) * c.slip_bps / 10_000.0))
        entry = self.affordable(entry, price)  # the venue's guard at the fill, now flat
        if entry:
            self._fill(j, entry, price)

    def _fill(self, j: int, delta: float, price: float) -> None:
        paid = _fee(abs(delta), price, self.c)
        self.cash -= delta * price + paid
        self.pos += delta
        bars, prices, deltas, fees, cash, position = self.columns
        bars.append(j)
        prices.append(price)
        deltas.append(delta)
        fees.append(paid)
        cash.append(self.cash)
        position.append(self.pos)

    def next_sizable(self, rows: np.ndarray, k: int, row: int) -> int:
        """Return the first flat-row decision from ``rows[k]`` (== ``row``) on that the (flat)
        account can size one lot for and pay one step of, or -1."""
        if self._sizable(np.array([self.close[row]]))[0]:
            return row  # the common case: cash enough at once
        step = 256
        while k < rows.size:
            chunk = rows[k : k + step]
            hits = np.flatnonzero(self._sizable(self.close[chunk]))
            if hits.size:
                return int(chunk[hits[0]])
            k += step
            step *= 4
        return -1

    def _sizable(self, closes: np.ndarray) -> np.ndarray:
        c = self.c
        with np.errstate(invalid="ignore", divide="ignore"):
            units = np.floor(self.cash * c.fraction / closes / c.lot)
            # The OMS rejects an order the cash cannot pay one step of at its reference close.
            steps = np.floor(
                c.leverage * self.cash / (closes * (1.0 + c.leverage * c.fee) * c.step)
            )
        return (units >= 1) & (steps >= 1)

    def affordable(self, delta: float, price: float) -> float:
        """Return the part of ``delta`` the buying power allows at ``price`` (as the engine's
        ``buying_power.affordable_quantity``, in floats, for one symbol)."""
        pos, c = self.pos, self.c
        if delta == 0 or (pos * delta < 0 and abs(delta) <= abs(pos)):
            return delta  # only shrinks the position
        closing = abs(pos) if pos * delta < 0 else 0.0
        lev = c.leverage
        room = lev * (self.cash + pos * price) - (abs(pos) - 2 * closing) * price
        if abs(delta) * price * (1.0 + lev * c.fee) <= room:
            return delta  # fits: the common case
        best = closing
        if room > 0 and price > 0:
            units = math.floor(room / (price * (1.0 + lev * c.fee)) / c.step)
            # Rounded to the step's decimals: the float nearest the engine's exact Decimal.
            best = max(closing, round(units * c.step, c.step_digits))
        if best >= abs(delta):
            return delta
        return 0.0 if c.reject else math.copysign(best, delta)

    def can_buy(self, price: float) -> bool:
        """Return True if the cash sizes to at least one lot at ``price``."""
        c = self.c
        return math.floor(self.cash * c.fraction / price / c.lot) >= 1

    def retry_bar(self, entries: np.ndarray, start: int, stop: int, d: float) -> int | None:
        """Return the first later entry decision for ``d`` that the (flat) account can size."""
        c = self.c
        closes = self.close[start:stop]
        with np.errstate(invalid="ignore", divide="ignore"):
            units = np.floor(self.cash * c.fraction / closes / c.lot)
            # The OMS rejects an order the cash cannot pay one step of at its reference close.
            per_step = closes * (1.0 + c.leverage * c.fee) * c.step
            steps = np.floor(c.leverage * self.cash / per_step)
        hits = np.flatnonzero((entries[start:stop] == d) & (units >= 1) & (steps >= 1))
        return start + int(hits[0]) if hits.size else None

    def ledger(self) -> Ledger:
        """Return the fills as arrays."""
        bars, *rest = self.columns
        arrays = [np.asarray(a, dtype=float) for a in rest]
        return Ledger(np.asarray(bars, dtype=np.int64), *arrays, self.c.cash)


# ----------------------------------------------------------------- entry points


def run_vectorised(
    strategy: str,
    bars: pd.DataFrame | BarData,
    params: Mapping[str, Any] | None = None,
    config: BacktestConfig | None = None,
    *,
    cache: IndicatorCache | None = None,
    with_metrics: bool = True,
) -> VectorResult:
    """Backtest one parameter set of a built-in or signal-style strategy on one symbol."""
    data = single_symbol(bars)
    return _run(strategy, data, params, config or BacktestConfig(), cache, with_metrics)


def single_symbol(bars: pd.DataFrame | BarData) -> BarData:
    """Return the bars as ``BarData``, refusing several symbols."""
    data = bars if isinstance(bars, BarData) else prepare_bars(bars)
    if len(data) and len(data.symbols) > 1:  # known from prepare_bars, no pass over the rows
        raise BacktestConfigError("the vectorised path runs one symbol at a time")
    return data


def _run(
    strategy: str,
    data: BarData,
    params: Mapping[str, Any] | None,
    config: BacktestConfig,
    cache: IndicatorCache | None,
    with_metrics: bool,
    clock: tuple[Calendar, float] | None = None,
    cls: type[Strategy] | None = None,
) -> VectorResult:
    cls = cls or vectorised_class(strategy)
    full = dict(cls(**dict(params or {})).params)  # the class validates the parameters
    cache = cache or bar_cache(data)
    costs = _costs(config, full)
    if strategy in SIGNALS:
        signals = SIGNALS[strategy](cache, full)
        ledger = simulate(signals, data.open, data.close, costs, cache.floor_after())
    else:
        if "open" not in cache.columns:  # a close-only cache: the user's frame needs them all
            cache = bar_cache(data)
        table = user_table(cls, cache, full)
        ledger = simulate_table(table, data.open, data.close, costs, cache.floor_after())
    next_open = FillModel(config.fill_model) is FillModel.NEXT_OPEN
    offset = 0 if next_open else TIMEFRAME_SECONDS[data.timeframe] * 1_000_000_000
    result = VectorResult(ledger, data.close, data.ts, offset)
    if with_metrics:
        calendar, years = clock or run_clock(config, data)
        result.calendar = calendar
        result.metrics = _metrics(result, config, calendar, years, 0 if next_open else 1)
    return result


def bar_cache(data: BarData) -> IndicatorCache:
    """Return the indicator cache of one symbol's bars, with the columns signal-style
    strategies read (ts, open, high, low, volume)."""
    columns = {
        "ts": data.ts,
        "open": data.open,
        "high": data.high,
        "low": data.low,
        "volume": data.volume,
    }
    return IndicatorCache(data.close, columns)


def run_clock(config: BacktestConfig, data: BarData) -> tuple[Calendar, float]:
    """Return the run's calendar and its elapsed years (shared by every set of a sweep)."""
    return run_calendar(config, data), elapsed_years(data.ts, data.timeframe)


def _metrics(
    result: VectorResult, config: BacktestConfig, calendar: Calendar, years: float, lag: int
) -> dict[str, float]:
    """Return the run's metrics; ``lag`` is how many bars after its fill bar a position
    counts as held (1 for fills at the close: the event path stamps them at the bar's end)."""
    trips = result.trade_arrays
    closed = trips["closed"]
    entry = (trips["qty"] * trips["entry_price"])[closed]
    pnl = trips["pnl"][closed]
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = np.where(entry != 0, pnl / entry, 0.0)
    return summarize(
        result.equity,
        initial=float(config.initial_cash),
        periods_per_year=calendar.periods_per_year,
        trade_pnls=pnl,
        trade_returns=returns,
        in_market=result.ledger.in_market(result.ts.size, lag),
        years=years,
    )


def sweep(
    strategy: str,
    bars: pd.DataFrame | BarData,
    param_sets: Iterable[Mapping[str, Any]],
    config: BacktestConfig | None = None,
    *,
    metrics: bool = True,
) -> pd.DataFrame:
    """Run every parameter set (indicators shared) and return one row per set."""
    data = single_symbol(bars)
    cfg = config or BacktestConfig()
    cls = vectorised_class(strategy)  # a user's file is looked up once, not once per set
    cache = bar_cache(data)
    clock = run_clock(cfg, data) if metrics else None
    rows = []
    for params in param_sets:
        res = _run(strategy, data, params, cfg, cache, metrics, clock, cls)
        row: dict[str, Any] = dict(params)
        row["final_equity"] = res.final_equity
        row["trades"] = res.n_closed
        if metrics:
            row.update({f"m_{k}": v for k, v in res.metrics.items()})
        rows.append(row)
    return pd.DataFrame(rows)
