"""Signal-style strategies: ``indicators(df)``, ``entries(df)`` and ``exits(df)`` over a DataFrame.

A user writes three functions of a pandas DataFrame of bars (columns ``ts``, ``open``, ``high``,
``low``, ``close``, ``volume``, one row per bar, oldest first), as Freqtrade users know them:

- ``indicators(df)`` adds the columns the rules read (moving averages...);
- ``entries(df)`` sets boolean ``enter_long`` and/or ``enter_short`` columns;
- ``exits(df)`` sets boolean ``exit_long`` and/or ``exit_short`` columns;
- optional columns: ``size`` (share of equity for an entry on that bar, above 0; NaN on a row
  means the ``fraction`` parameter, and a negative, zero or infinite size on an entry is an
  error naming the bar), ``stop_loss`` and ``take_profit`` (price levels attached to the entry
  as a bracket).

Rules for one bar, given the side held: flat, ``enter_long`` goes long (else ``enter_short``
short); long, ``enter_short`` reverses and ``exit_long`` closes; short, ``enter_long`` reverses and
``exit_short`` closes. Decisions are taken on a bar's close and filled like any other order.

In a backtest the three functions run once over the whole series and become the strategy's
decision table (``Strategy.decision_table``), so the sparse replay visits only the bars where
something happens (not with stop/take-profit columns: brackets must be watched on every bar, so
those run the full replay). Live, ``on_bar`` keeps the last ``live_window`` bars per symbol,
recomputes the three functions on them at each closed bar and acts on the last row: the same
decisions as the backtest when the indicators only look back (``lookahead.recursive_check``
verifies that) and ``live_window`` covers their longest lookback.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from marketdata.engine.events import Bar
from trading.engine.constants import DEFAULT_LOT
from trading.engine.errors import StrategyConfigError
from trading.engine.money import ZERO, to_decimal
from trading.engine.orders import OrderSide
from trading.engine.series import IndicatorCache
from trading.engine.strategy import Strategy, StrategyContext, _market_intent

COLUMNS = ("ts", "open", "high", "low", "close", "volume")
ENTRY_COLUMNS = ("enter_long", "enter_short")
EXIT_COLUMNS = ("exit_long", "exit_short")
BRACKET_COLUMNS = ("stop_loss", "take_profit")
_BUY, _SELL = OrderSide.BUY, OrderSide.SELL
_UNIT = (1, -1)  # the directions of a plain entry (``on_decision``)
_UNLABELLED = object()  # ``SignalStrategy._labels`` not made yet


def _not_boolean(column: pd.Series) -> object | None:
    """Return a value of ``column`` that is neither a boolean, 0, 1 nor missing (None: none)."""
    values = column.dropna()
    if pd.api.types.is_numeric_dtype(values.dtype):
        odd = values[~values.isin((0, 1))]
        return None if odd.empty else odd.iloc[0]
    for value in values.unique():
        if isinstance(value, bool | np.bool_):
            continue
        if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
            continue
        return value
    return None


def _per_lot(fraction: Decimal, lot: Decimal) -> Decimal | None:
    """Return ``fraction / lot`` if ``lot`` is a power of ten (1E-8...) and the quotient exact
    and finite, else None. Then ``equity * per_lot / price`` has the digits of ``equity *
    fraction / price / lot`` (dividing by such a lot only moves the exponent; rounding to the
    context's digits does not depend on it), one division fewer an entry."""
    if not (lot.is_finite() and fraction.is_finite()) or lot.as_tuple().digits != (1,):
        return None
    try:
        per_lot = fraction / lot
        return per_lot if per_lot * lot == fraction else None
    except ArithmeticError:  # beyond the exponents' range (the sizing raises as it did)
        return None


class StrategyCodeError(StrategyConfigError):
    """A user strategy raised: the message names the file, the line and the bar."""


def code_error(strategy: Strategy, exc: BaseException, where: str) -> StrategyCodeError:
    """Return the error naming the file and line in ``strategy``'s code that raised."""
    module = sys.modules.get(type(strategy).__module__)
    file = getattr(module, "__file__", None) or type(strategy).__module__
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == file:
            line = tb.tb_lineno
        tb = tb.tb_next
    at = f"{file}, line {line}" if line else file
    return StrategyCodeError(
        f"strategy {strategy.name} raised {type(exc).__name__}: {exc} ({at}; {where})"
    )


def _read_only(values: np.ndarray) -> np.ndarray:
    """Return a read-only view of ``values``."""
    view = values.view()
    view.flags.writeable = False
    return view


def _wrote_read_only(exc: BaseException) -> bool:
    """Return True if ``exc`` (or what caused it) is a write into a read-only array."""
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen).lower()
        if "read-only" in text or "readonly" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class SignalStrategy(Strategy):
    """Base class of signal-style strategies (see the module docstring)."""

    abstract: ClassVar[bool] = True  # the loader skips classes that set this in their own body
    default_params: ClassVar[Mapping[str, Any]] = {"fraction": 0.1, "lot": DEFAULT_LOT}
    live_window: ClassVar[int] = 500  # bars kept per symbol live; must cover the longest lookback

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "abstract" not in vars(cls):
            cls.abstract = False
        base = {"fraction": 0.1, "lot": DEFAULT_LOT}
        # A subclass of a user's strategy keeps its parent's parameters (and may add its own):
        # taking only the class's own ones left ``class B(A): pass`` without A's fast/slow.
        inherited = getattr(super(cls, cls), "default_params", {})
        own = dict(vars(cls).get("default_params", {}))
        cls.default_params = {**base, **inherited, **own}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        try:
            self._fraction = to_decimal(self.params["fraction"])
            self._lot = to_decimal(self.params["lot"])
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise StrategyConfigError(f"{self.name}: fraction and lot must be numbers") from exc
        if not (self._fraction > 0 and self._lot > 0):
            raise StrategyConfigError(f"{self.name}: fraction and lot must be positive")
        self._per_lot = _per_lot(self._fraction, self._lot)  # (the two are set here only)
        self._bars: dict[str, deque[tuple]] = {}
        # ``on_decision``'s order signals by direction + 2 after the name they were made from
        # (the class's ``name`` may be set after this), made again when the name is another.
        self._labels: tuple[Any, ...] = (_UNLABELLED,)

    # ----------------------------------------------------------------- what users write

    def indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        """Add indicator columns to ``df`` and return it."""
        return df

    def entries(self, df: pd.DataFrame) -> pd.DataFrame:
        """Set boolean ``enter_long``/``enter_short`` columns and return ``df``."""
        return df

    def exits(self, df: pd.DataFrame) -> pd.DataFrame:
        """Set boolean ``exit_long``/``exit_short`` columns and return ``df``."""
        return df

    # ----------------------------------------------------------------- the compiled form

    def signals(self, df: pd.DataFrame, where: str = "") -> pd.DataFrame:
        """Return ``df`` with indicators, entries and exits (a user error names file and line)."""
        step, rows = "indicators", len(df)
        try:
            df = self.indicators(df)
            step = "entries"
            df = self.entries(df)
            step = "exits"
            df = self.exits(df)
        except StrategyConfigError:
            raise
        except (Exception, SystemExit) as exc:  # sys.exit() in user code: its error too
            raise code_error(self, exc, f"in {step}(){where}") from exc
        if not isinstance(df, pd.DataFrame):
            raise StrategyCodeError(f"strategy {self.name}: {step}() must return the DataFrame")
        self._check_frame(df, rows, where)
        return df

    def _check_frame(self, df: pd.DataFrame, rows: int, where: str) -> None:
        """Refuse a frame whose rows or signal columns cannot be read as one decision a bar.

        A frame with rows dropped would shift every signal onto another bar; a signal column of
        text or prices would read as True on every bar (both were taken silently before).
        """
        if len(df) != rows:
            raise StrategyCodeError(
                f"strategy {self.name}: its functions must keep one row per bar ({rows} bars, "
                f"got {len(df)} rows{where}; drop nothing, fill instead)"
            )
        for name in (*ENTRY_COLUMNS, *EXIT_COLUMNS):
            if name not in df or pd.api.types.is_bool_dtype(df[name].dtype):
                continue
            odd = _not_boolean(df[name])
            if odd is not None:
                raise StrategyCodeError(
                    f"strategy {self.name}: column {name!r} must hold True/False (1/0, or NaN for "
                    f"neither), not {df[name].dtype} values such as {odd!r}{where}"
                )

    @staticmethod
    def table_of(df: pd.DataFrame) -> np.ndarray:
        """Return the decision table (3 × bars: direction wanted when short, flat, long)."""
        n = len(df)

        def flag(name: str) -> np.ndarray | None:
            if name not in df:
                return None  # never set: nothing to write
            column = df[name]
            if column.dtype == bool:  # no NaN to fill: read as it is
                return column.to_numpy()
            return column.fillna(False).to_numpy(dtype=bool)

        el, es, xl, xs = (flag(c) for c in (*ENTRY_COLUMNS, *EXIT_COLUMNS))
        # Written into one table, later rules over earlier ones (no temporaries: at a million
        # bars each would be 8 MB of fresh memory).
        table = np.full((3, n), np.nan)
        short, flat, long = table
        for row, rules in (
            (short, ((xs, 0.0), (el, 1.0))),  # short: enter_long reverses, else exit_short closes
            (flat, ((es, -1.0), (el, 1.0))),  # flat: enter_long, else enter_short
            (long, ((xl, 0.0), (es, -1.0))),  # long: enter_short reverses, else exit_long closes
        ):
            for mask, direction in rules:
                if mask is not None:
                    row[mask] = direction
        return table

    def frame_of(self, series: IndicatorCache, *, copy: bool = True) -> pd.DataFrame:
        """Return the bars of ``series`` as the DataFrame users' functions read.

        ``copy=False``: the price columns are read-only views of the series' arrays (the bars
        the backtest fills on), not a copy: writing into them raises instead of changing them.
        """
        columns = getattr(series, "columns", None) or {}
        close = series.close
        data = {
            name: columns.get(name, close if name != "volume" else np.zeros(close.size))
            for name in COLUMNS
            if name != "ts"
        }
        if copy:
            frame = pd.DataFrame(data)
        else:
            frame = pd.DataFrame({k: _read_only(v) for k, v in data.items()}, copy=False)
        if "ts" in columns:
            stamps = np.asarray(columns["ts"])
            # From int64 ns: a view (the index copies it once; astype and tz_localize copied
            # twice more), no parsing.
            ns = stamps.view("datetime64[ns]") if stamps.dtype == np.int64 else stamps
            ns = ns.astype("datetime64[ns]", copy=False)
            frame.insert(0, "ts", pd.DatetimeIndex(ns, tz="UTC"))
        return frame

    def decision_table(self, series: IndicatorCache) -> np.ndarray | None:
        """Run the three functions over the whole series once; None with size/bracket columns.

        They first read the bars themselves, read-only (a million bars' copy cost more than
        most indicators); functions that write into the price columns they were given raise
        there, and run again on a copy, as before.
        """
        where = " over the whole series"
        try:
            df = self.signals(self.frame_of(series, copy=False), where)
        except StrategyCodeError as exc:
            if not _wrote_read_only(exc):
                raise
            df = self.signals(self.frame_of(series), where)
        if any(c in df for c in (*BRACKET_COLUMNS, "size")):
            # Brackets are watched bar by bar and sizes vary by bar: the full replay (on_bar).
            return None
        return self.table_of(df)

    def on_decision(self, bar: Bar, choices: Sequence[float], ctx: StrategyContext) -> float | None:
        """Act as ``on_bar`` would on the bar's row of the decision table.

        With no order open or queued (a backtest's every decision, nearly) the expected
        position is the position, and a close or an entry from flat is queued here, written out
        (``_go``, ``size_for`` and ``_target`` for these two cases: tests compare the intents
        with ``_go``'s); otherwise, and for a reversal or a sizing policy, ``_go`` acts.
        """
        symbol = bar.symbol
        pos = ctx._portfolio.positions.get(symbol)  # ``ctx.position``, written out
        position = pos.quantity if pos is not None else ZERO
        book = ctx._open_book
        if ctx._intents or book is None or book:  # something open or queued (or unknown)
            # ``_held``, keeping the two figures ``_go``'s first order would read again.
            expected = ctx._expected(symbol, position)
            held = (expected > ZERO) - (expected < ZERO)
            direction = choices[held + 1]
            if direction != direction:
                return None
            return self._go(ctx, bar, int(direction), held, None, None, (position, expected))
        held = 0 if not position else 1 if position > ZERO else -1
        direction = choices[held + 1]
        if direction != direction:
            return None
        direction = int(direction)
        if direction == held:
            return None
        if direction == 0:
            # ``_target(symbol, ZERO, ...)``: a pure reduction, of |0 - position| (the same
            # digits and exponent as ``position - 0``, or ``0 - position`` when short).
            side, quantity = (_SELL, position - ZERO) if held > 0 else (_BUY, ZERO - position)
            reducing = True
        else:
            close = bar.close
            if held or direction not in _UNIT or ctx.sizer is not None or not close > 0.0:
                # A reversal, a direction of 2 or more units (a table not ``table_of``'s),
                # sizing by the account's policy, or a close not above 0 (or NaN).
                return self._go(ctx, bar, direction, held, None, None, (position, position))
            # ``size_for`` without a sizer (the lot was checked positive by ``__init__``) ...
            price = to_decimal(close)
            fraction, lot, per_lot = self._fraction, self._lot, self._per_lot
            if per_lot is not None:  # (``_per_lot``: the same digits)
                budget = ctx._portfolio.equity * per_lot / price
            else:
                budget = ctx._portfolio.equity * fraction / price / lot
            units = budget.to_integral_value(ROUND_FLOOR) * lot
            if not units > ZERO:
                return float(ctx.equity * fraction / lot)
            if per_lot is None and not units.is_finite():
                # An infinite fraction (never with a ``_per_lot``): ``_target`` refuses it.
                return self._go(ctx, bar, direction, held, None, None, (position, position))
            # ... and ``_target(symbol, units * direction, ...)`` from a zero position: not
            # reducing, of |units * direction - position| (the digits of ``units - position``).
            quantity = units - position
            side, reducing = _BUY if direction > 0 else _SELL, False
        labels = self._labels  # ``f"{self.name}:flat"`` (":long", ":short"), made once
        if labels[0] is not self.name:
            name = self.name
            labels = self._labels = (name, f"{name}:short", f"{name}:flat", f"{name}:long")
        signal = labels[direction + 2]
        oid = ctx._ids()
        outbox = ctx._outbox
        if outbox is not None:
            outbox.append(ctx)
        ctx._intents.append(
            _market_intent(
                ctx.account, symbol, side, quantity, reducing, ctx.strategy_id, signal, oid
            )
        )
        return None

    # ----------------------------------------------------------------- live

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        """Recompute the functions over the last ``live_window`` bars and act on the last row."""
        window = self._bars.get(bar.symbol)
        if window is None:
            window = self._bars[bar.symbol] = deque(maxlen=int(self.live_window))
        window.append((bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume))
        df = pd.DataFrame(list(window), columns=list(COLUMNS))
        df["ts"] = pd.to_datetime(df["ts"], utc=True)
        for name in COLUMNS[1:]:
            df[name] = df[name].astype(float)
        df = self.signals(df, f" at the bar of {bar.symbol} closing {bar.ts.isoformat()}")
        last = df.iloc[-1:]
        held = self._held(ctx, bar.symbol)
        direction = self.table_of(last)[held + 1, 0]
        if direction != direction:
            return
        row = last.iloc[0]
        size = row["size"] if "size" in df else None
        brackets = {c: row[c] for c in BRACKET_COLUMNS if c in df and pd.notna(row[c])}
        self._go(ctx, bar, int(direction), held, size, brackets)

    # ----------------------------------------------------------------- shared

    @staticmethod
    def _held(ctx: StrategyContext, symbol: str) -> int:
        expected = ctx.expected_position(symbol)
        return (expected > ZERO) - (expected < ZERO)

    def _go(
        self,
        ctx: StrategyContext,
        bar: Bar,
        direction: int,
        held: int,
        size: Any,
        brackets: dict[str, Any] | None,
        read: tuple[Decimal, Decimal] | None = None,
    ) -> float | None:
        """Move from ``held`` to ``direction``; ``read``: the position and the expected
        position (``StrategyContext._expected``) just read, if the caller has them."""
        if direction == held:
            return None
        symbol = bar.symbol
        if direction == 0:
            if read is None:
                ctx.target_position(symbol, ZERO, signal=f"{self.name}:flat")
            else:  # the same, without reading the position again
                ctx._target(symbol, ZERO, *read, f"{self.name}:flat")
            return None
        price = to_decimal(bar.close)  # an entry's size only: an exit needs no price
        fraction = self._fraction
        if size is not None and pd.notna(size):  # NaN (no size on that row): ``fraction``
            value = float(size)
            if not (0 < value < math.inf):  # -5 or inf fell back to ``fraction`` silently
                # The user's column, named as such (not as a failure of the engine's on_bar).
                module = sys.modules.get(type(self).__module__)
                file = getattr(module, "__file__", None) or type(self).__module__
                raise StrategyCodeError(
                    f"strategy {self.name}: size {value!r} on the {symbol} bar of "
                    f"{bar.ts.isoformat()}, an entry, in the size column entries() wrote (a "
                    f"share of equity above 0; NaN uses the fraction) ({file})"
                )
            fraction = to_decimal(value)
        quantity = ctx.size_for(symbol, fraction, self._lot, price)
        side = "long" if direction > 0 else "short"
        if held != 0:  # reverse: close first (a pure reduction), then enter
            ctx.target_position(symbol, ZERO, signal=f"{self.name}:flat")
            read = None  # the entry reads the close just queued
        if quantity <= ZERO:
            return None if brackets else float(ctx.equity * fraction / self._lot)
        if brackets:
            method = ctx.buy if direction > 0 else ctx.sell
            method(
                symbol,
                quantity,
                signal=f"{self.name}:{side}",
                **{k: Decimal(str(v)) for k, v in brackets.items()},
            )
        elif read is None:
            ctx.target_position(symbol, quantity * direction, signal=f"{self.name}:{side}")
        else:  # the same, without reading the position again
            ctx._target(symbol, quantity * direction, *read, f"{self.name}:{side}")
        return None
