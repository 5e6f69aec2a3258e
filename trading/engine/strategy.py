"""The Strategy interface shared by backtests and live trading, and the context strategies use.

A strategy reacts to events (``on_bar``, ``on_trade``, ``on_quote``, ``on_fill``,
``on_prediction``) and expresses what it wants through its ``StrategyContext``: order intents and
cancels are queued there and submitted by the runner after the callback returns. Strategies
never see a venue, an OMS or a database, and only ever data up to ``ctx.now``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Any, ClassVar, Protocol

import numpy as np

from marketdata.engine.events import Bar, Quote, Trade
from marketdata.engine.records import compile_builder, record_builder
from trading.engine.errors import StrategyConfigError
from trading.engine.money import ZERO, to_decimal
from trading.engine.orders import (
    Fill,
    IdFactory,
    Order,
    OrderIntent,
    OrderSide,
    OrderType,
    TimeInForce,
    new_order_id,
)
from trading.engine.portfolio import Portfolio
from trading.engine.series import IndicatorCache

Number = Decimal | float | int | str
_DECIMAL_KWARGS = ("trail_amount", "trail_percent", "stop_loss", "take_profit")


def _algo_request(algo: str, duration: Any, slices: int | None, kwargs: dict) -> dict:
    """Return the validated algo request (``metadata["algo"]``); pops its own keywords."""
    from trading.engine.algo_book import AlgoSpec

    if duration is None:
        raise StrategyConfigError(f"algo {algo!r} needs a duration")
    spec = AlgoSpec.from_request(
        algo,
        duration=duration,
        slices=slices,
        max_participation=kwargs.pop("max_participation", None),
        profile=kwargs.pop("profile", None),
    )
    return spec.to_metadata()


_BUY, _SELL = OrderSide.BUY, OrderSide.SELL  # module constants: cheaper than Enum attributes
_MARKET, _GTC = OrderType.MARKET, TimeInForce.GTC
_new_intent = record_builder(OrderIntent)  # ``OrderIntent(...)``, built faster (one per order)
# A plain market intent (``target_position``'s, ``SignalStrategy.on_decision``'s, a ``buy`` or
# ``sell`` with no options): its eight fields by position, the others at their defaults. Passed
# by keyword (``_new_intent``), ten keywords were matched against eighteen parameters on every
# order. Tests compare it with ``OrderIntent(...)`` field by field.
_MARKET_FIELDS = (
    "account",
    "symbol",
    "side",
    "quantity",
    "reduce_only",
    "strategy",
    "signal",
    "client_order_id",
)
_market_intent = compile_builder(
    OrderIntent, "market_intent", ", ".join(_MARKET_FIELDS), {n: n for n in _MARKET_FIELDS}
)


class PredictionKind(StrEnum):
    """What a model predicts."""

    DIRECTION = "direction"  # value = probability the price goes up over the horizon
    RETURN = "return"  # value = expected return over the horizon (fraction)
    VOLATILITY = "volatility"  # value = expected volatility over the horizon (fraction)


@dataclass(frozen=True, slots=True)
class Prediction:
    """A model output for one symbol at ``ts`` (produced by models_ml)."""

    symbol: str
    ts: datetime
    kind: PredictionKind
    value: float
    confidence: float = 1.0
    model: str = ""
    horizon: str = ""


class Strategy:
    """Base class: override the callbacks you need; ``default_params`` lists accepted params."""

    name: ClassVar[str] = "strategy"
    default_params: ClassVar[Mapping[str, Any]] = {}
    # Typed parameters with ranges (``trading.engine.params``): their defaults join
    # ``default_params``, values are checked, and sweeps search their ranges.
    parameters: ClassVar[Mapping[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = vars(cls).get("parameters")
        if declared:
            defaults = {name: p.default for name, p in declared.items()}
            cls.default_params = {**cls.default_params, **defaults}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.default_params))
        if unknown:
            raise StrategyConfigError(f"{self.name}: unknown parameter(s) {', '.join(unknown)}")
        self.params: dict[str, Any] = {**self.default_params, **params}
        if self.parameters:
            from trading.engine.params import checked

            checked(self.name, self.parameters, self.params)

    @property
    def warmup_bars(self) -> int:
        """Return how many past bars make this strategy's first live bar a decision.

        The default reads the whole-number lengths among the parameters (``slow``, ``period``,
        ``lookback``, ``*_window``...): the longest indicator needs that many closes, and one
        more gives the previous value a crossing compares with. Override when that is wrong.
        """
        lengths = [
            int(value)
            for key, value in self.params.items()
            if _is_length(key) and isinstance(value, int | float) and not isinstance(value, bool)
        ]
        return max(lengths) + 1 if lengths else 0

    def on_start(self, ctx: StrategyContext) -> None:
        """Prepare before the first event."""

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        """React to a closed bar."""

    def on_trade(self, trade: Trade, ctx: StrategyContext) -> None:
        """React to a trade print."""

    def on_quote(self, quote: Quote, ctx: StrategyContext) -> None:
        """React to a quote."""

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> None:
        """React to one of this strategy's fills."""

    def on_prediction(self, prediction: Prediction, ctx: StrategyContext) -> None:
        """React to a model prediction."""

    def on_signal(self, signal: Any, ctx: StrategyContext) -> None:
        """React to an external signal (``trading.engine.signals.Signal``, e.g. TradingView)."""

    def on_stop(self, ctx: StrategyContext) -> None:
        """Clean up after the last event."""

    # ----------------------------------------------------------------- whole-series form

    def decision_table(self, series: IndicatorCache) -> np.ndarray | None:
        """Describe ``on_bar`` over one symbol's whole close series, or return None (default).

        A strategy whose ``on_bar`` is a pure function of its symbol's closes up to the bar and
        of the sign ``h`` of its expected position may return a float array of shape
        ``(3, len(series.close))``: row ``h + 1`` holds, for each bar, the direction (-1, 0 or
        +1) ``on_bar`` then moves to, or NaN where it does nothing; a value equal to ``h`` must
        also mean "nothing". Backtests use it to skip the bars where nothing can happen and call
        ``on_decision`` instead of ``on_bar`` on the others (``BacktestRunner``). Only the class
        that defines ``on_bar`` may define the table (a subclass overriding ``on_bar`` disables
        it), and strategies with a table must not react to fills, trades, quotes or predictions.
        """
        return None

    def on_decision(self, bar: Bar, choices: Sequence[float], ctx: StrategyContext) -> float | None:
        """Act on ``bar`` as ``on_bar`` would, given its decision-table column ``choices``.

        May return a price when it tried to act and could not (an entry sized to nothing): a
        bound above which later closes cannot let it act either while the account holds no
        position and nothing else changes. Backtests then skip the bars closing above it.
        """
        raise NotImplementedError(f"{self.name} has no decision table")

    @classmethod
    def has_decision_table(cls) -> bool:
        """Return True if this class's ``on_bar`` is described by its ``decision_table``."""
        return (
            _defined_by(cls, "decision_table") is not Strategy
            and _defined_by(cls, "on_bar") is _defined_by(cls, "decision_table")
            and all(_defined_by(cls, name) is Strategy for name in _TABLE_FREE_CALLBACKS)
        )


_TABLE_FREE_CALLBACKS = ("on_trade", "on_quote", "on_fill", "on_prediction", "on_signal")
_LENGTH_PARAMS = frozenset({"slow", "fast", "period", "lookback", "window"})


def _is_length(name: str) -> bool:
    """Return True for a parameter that names an indicator's length in bars."""
    return name in _LENGTH_PARAMS or name.endswith(("_window", "_period", "_lookback"))


def _defined_by(cls: type, name: str) -> type | None:
    """Return the class in ``cls``'s MRO that defines attribute ``name``."""
    return next((k for k in cls.__mro__ if name in vars(k)), None)


class PriceHistory:
    """Recent closes per symbol (bounded), appended before strategies see the bar.

    Each symbol's closes live in a plain list that grows to twice ``maxlen`` before its oldest
    half is dropped: an append is a list append (amortised O(1), the trim moves ``maxlen``
    pointers once every ``maxlen`` bars) and ``last(symbol, n)`` copies only the ``n`` closes
    asked for, not the whole window. A list, not a view: what a strategy keeps from one bar never
    changes under it on the next (a view over a ring buffer would), and Python code sums and
    indexes a list of floats faster than a numpy view (``bench/`` measured: ~2x).
    """

    __slots__ = ("_closes", "_limit", "maxlen")

    def __init__(self, maxlen: int = 1000) -> None:
        if maxlen < 1:
            raise StrategyConfigError("history size must be at least 1")
        self.maxlen = maxlen
        self._limit = 2 * maxlen  # trim back to ``maxlen`` when a list grows past this
        self._closes: dict[str, list[float]] = {}

    def append(self, symbol: str, close: float) -> None:
        """Record a close for ``symbol``."""
        closes = self._closes.get(symbol)
        if closes is None:
            closes = self._closes[symbol] = []
        closes.append(close)
        if len(closes) > self._limit:
            del closes[: -self.maxlen]

    def closes_of(self, symbol: str) -> tuple[list[float], int]:
        """Return the list ``symbol``'s closes are kept in and the length to trim it past.

        For a loop that records many closes (``StrategyRunner.replay_bars``): it appends to
        this very list, as ``append`` would, and calls ``trim(symbol)`` once it is longer than
        the returned length, saving a method call and a lookup a bar.
        """
        closes = self._closes.get(symbol)
        if closes is None:
            closes = self._closes[symbol] = []
        return closes, self._limit

    def trim(self, symbol: str) -> None:
        """Drop ``symbol``'s closes older than the last ``maxlen`` (in place)."""
        closes = self._closes.get(symbol)
        if closes is not None and len(closes) > self.maxlen:
            del closes[: -self.maxlen]

    def last(self, symbol: str, n: int) -> list[float]:
        """Return up to ``n`` most recent closes, oldest first (a new list)."""
        closes = self._closes.get(symbol)
        if not closes or n <= 0:
            return []
        return closes[-(n if n < self.maxlen else self.maxlen) :]

    def latest(self, symbol: str) -> float | None:
        """Return the most recent close, if any."""
        closes = self._closes.get(symbol)
        return closes[-1] if closes else None


class AccountReader(Protocol):
    """The read side of the OMS a context needs (``OrderManager`` satisfies it)."""

    def portfolio(self, account: str) -> Portfolio:
        """Return the account's portfolio."""
        ...

    def open_orders(self, account: str | None = None, symbol: str | None = None) -> list[Order]:
        """Return open orders."""
        ...

    def reference_price(self, symbol: str) -> Decimal | None:
        """Return the current mid or last price."""
        ...


class PositionSizer(Protocol):
    """The account's sizing policy (``risk.engine.sizing.PolicySizer`` satisfies it)."""

    def lookback(self, strategy: str) -> int:
        """Return how many recent closes sizing ``strategy`` reads."""
        ...

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
        ...


_NAN = Decimal("NaN")


def _decimal(value: Any) -> Decimal:
    """Return ``value`` as a Decimal, or NaN when it is no number ("lots", None): the callers'
    checks then name the strategy and the value, not a bare ``decimal.InvalidOperation``."""
    try:
        return to_decimal(value)
    except (ArithmeticError, TypeError, ValueError):
        return _NAN


def _price(ctx: StrategyContext, name: str, value: Number) -> Decimal:
    """Return ``value`` as a Decimal; raise ValueError naming the strategy unless it is > 0."""
    price = _decimal(value)
    if not price.is_finite() or price <= ZERO:
        raise ValueError(f"strategy {ctx.strategy_id}: {name} {value!r} (a finite price above 0)")
    return price


class StrategyContext:
    """What a strategy can read and ask for; intents are queued until the runner drains them."""

    __slots__ = (
        "_cancels",
        "_closes",
        "_has_open",
        "_history",
        "_open_book",
        "_ids",
        "_intents",
        "_outbox",
        "_portfolio",
        "_reader",
        "account",
        "now",
        "sizer",
        "strategy_id",
    )

    def __init__(
        self,
        *,
        reader: AccountReader,
        account: str,
        strategy_id: str,
        history: PriceHistory,
        id_factory: IdFactory = new_order_id,
        outbox: list[StrategyContext] | None = None,
    ) -> None:
        self._reader = reader
        # The account's portfolio, read on every bar by many strategies (``position``): the
        # reader keeps one per account (``OrderManager.restore`` reloads it in place).
        self._portfolio = reader.portfolio(account)
        # "Any open order in this symbol?" without building the list (readers that can say so).
        self._has_open = getattr(reader, "has_open_orders", None)
        # The account's open orders by id, the OMS's live mapping (changed in place, never
        # replaced): "none open at all" (the common answer) is then a truth test, not a call.
        book = getattr(reader, "open_order_book", None)
        self._open_book = book(account) if book is not None else None
        self.account = account
        self.strategy_id = strategy_id
        self._history = history
        self._closes = history._closes  # ``history(symbol, n)`` reads them without a call
        self._ids = id_factory
        self._intents: list[OrderIntent] = []
        self._cancels: list[str] = []
        # The runner's list of contexts that queued something since it last settled: one
        # truth test on every bar tells it whether anything waits.
        self._outbox = outbox
        self.now: datetime | None = None
        # The account's sizing policy; None (backtests) sizes by the strategy's own fraction.
        self.sizer: PositionSizer | None = None

    # ----------------------------------------------------------------- reads

    @property
    def cash(self) -> Decimal:
        """Return the account's cash."""
        return self._portfolio.cash

    @property
    def equity(self) -> Decimal:
        """Return the account's equity."""
        return self._portfolio.equity

    def position(self, symbol: str) -> Decimal:
        """Return the account's signed position in ``symbol``."""
        pos = self._portfolio.positions.get(symbol)  # ``Portfolio.quantity``, written out
        return pos.quantity if pos is not None else ZERO

    def price(self, symbol: str) -> Decimal | None:
        """Return the current reference price (mid or last), else the last close."""
        price = self._reader.reference_price(symbol)
        if price is None:
            close = self._history.latest(symbol)
            price = to_decimal(close) if close is not None else None
        return price

    def history(self, symbol: str, n: int) -> list[float]:
        """Return up to ``n`` recent closes of ``symbol``, oldest first (never future data)."""
        closes = self._closes.get(symbol)  # ``PriceHistory.last``, written out
        if not closes or n <= 0:
            return []
        maxlen = self._history.maxlen
        return closes[-(n if n < maxlen else maxlen) :]

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Return this strategy's open orders."""
        return [
            o
            for o in self._reader.open_orders(self.account, symbol)
            if o.strategy == self.strategy_id
        ]

    def expected_position(self, symbol: str) -> Decimal:
        """Return the position once this strategy's open orders and queued intents complete.

        Bracket children are protective exits, not intended trades, so they do not count.
        """
        return self._expected(symbol, self.position(symbol))

    def _expected(self, symbol: str, expected: Decimal) -> Decimal:
        """Return position ``expected`` plus this strategy's open orders and queued intents."""
        if not self._intents:
            if self._open_book is not None and not self._open_book:
                return expected  # the account has no open order at all
            has_open = self._has_open
            if has_open is not None:
                if not has_open(self.account, symbol):
                    return expected
            elif not self._reader.open_orders(self.account, symbol):
                return expected
        for o in self.open_orders(symbol):
            if not o.parent_id:
                expected += o.remaining * o.sign
        for i in self._intents:
            if i.symbol == symbol:
                expected += i.quantity if i.side is _BUY else -i.quantity
        return expected

    def size_for(
        self, symbol: str, fraction: Number, lot: Decimal, price: Number | None = None
    ) -> Decimal:
        """Return the quantity worth ``fraction`` of equity at ``price``, floored to ``lot``.

        With a sizing policy attached (a running account's) the policy decides the quantity;
        ``fraction`` is then what the strategy asked for, which a policy may use or cap.
        """
        # A Decimal is its own conversion: no call (the entries of signal strategies).
        if price.__class__ is Decimal:
            px = price
        else:
            px = to_decimal(price) if price is not None else self.price(symbol)
        if px is None or px <= ZERO:
            return ZERO
        sizer = self.sizer
        if sizer is not None:
            sid = self.strategy_id
            closes = self._history.last(symbol, sizer.lookback(sid))
            return sizer.size(
                strategy=sid,
                equity=self.equity,
                price=px,
                fraction=to_decimal(fraction),
                lot=lot,
                closes=closes,
            )
        if fraction.__class__ is not Decimal:
            fraction = to_decimal(fraction)
        budget = self._portfolio.equity * fraction  # ``self.equity``, one call fewer
        # ``max(ZERO, floor_to_step(budget / px, lot))``, written out: two calls fewer an entry.
        if lot <= ZERO:
            raise ValueError("step must be positive")
        units = (budget / px / lot).to_integral_value(ROUND_FLOOR) * lot  # (no keyword to match)
        return units if units > ZERO else ZERO

    # ----------------------------------------------------------------- intents

    def buy(self, symbol: str, quantity: Number, **kwargs: Any) -> str:
        """Queue a buy; return its client order id. Keywords as in ``OrderIntent``."""
        if not kwargs:  # (``**{}`` would build a new dict for the call: most orders take none)
            return self.order(_BUY, symbol, quantity)
        return self.order(_BUY, symbol, quantity, **kwargs)

    def sell(self, symbol: str, quantity: Number, **kwargs: Any) -> str:
        """Queue a sell; return its client order id. Keywords as in ``OrderIntent``."""
        if not kwargs:  # (``**{}`` would build a new dict for the call: most orders take none)
            return self.order(_SELL, symbol, quantity)
        return self.order(_SELL, symbol, quantity, **kwargs)

    def order(
        self,
        side: OrderSide,
        symbol: str,
        quantity: Number,
        *,
        type: OrderType = _MARKET,
        price: Number | None = None,
        stop_price: Number | None = None,
        tif: TimeInForce = _GTC,
        algo: str | None = None,
        duration: Any = None,
        slices: int | None = None,
        **kwargs: Any,
    ) -> str:
        """Queue an order intent; return its client order id.

        A negative or non-finite ``quantity`` (NaN, inf), or a ``price``/``stop_price`` not above
        0 or not finite, raises ValueError naming the strategy and the value: the strategy's
        error, not an order the venue quietly refuses.

        ``algo="twap"|"vwap"`` with ``duration`` (seconds or a timedelta) and optionally
        ``slices``, ``max_participation`` or a VWAP ``profile`` makes it a parent the runner works
        in children over that time (``trading.engine.algo_book``).
        """
        # A Decimal is its own conversion (no call on an order's path); "lots", None: NaN,
        # refused below naming the strategy and the value.
        qty = quantity if quantity.__class__ is Decimal else _decimal(quantity)
        if not qty.is_finite() or qty < ZERO:  # was a silent reject: no trade, no message
            raise ValueError(
                f"strategy {self.strategy_id}: {side} {symbol} quantity {quantity!r} "
                "(a finite number of units, not negative)"
            )
        if price is not None:
            price = _price(self, "price", price)
        if stop_price is not None:
            stop_price = _price(self, "stop_price", stop_price)
        if algo is not None:
            kwargs["metadata"] = {
                **(kwargs.get("metadata") or {}),
                "algo": _algo_request(algo, duration, slices, kwargs),
            }
        if kwargs:
            for key in _DECIMAL_KWARGS:
                if kwargs.get(key) is not None:
                    kwargs[key] = to_decimal(kwargs[key])
        oid = self._ids()
        if self._outbox is not None:
            self._outbox.append(self)
        if (
            side.__class__ is OrderSide
            and type is _MARKET
            and tif is _GTC
            and price is None
            and stop_price is None
            and not kwargs
        ):  # a plain market order (most orders): its eight fields by position
            self._intents.append(
                _market_intent(self.account, symbol, side, qty, False, self.strategy_id, "", oid)
            )
            return oid
        self._intents.append(
            _new_intent(
                account=self.account,
                symbol=symbol,
                side=side if side.__class__ is OrderSide else OrderSide(side),
                quantity=qty,
                type=type if type.__class__ is OrderType else OrderType(type),
                price=price,
                stop_price=stop_price,
                tif=tif if tif.__class__ is TimeInForce else TimeInForce(tif),
                strategy=self.strategy_id,
                client_order_id=oid,
                **kwargs,
            )
        )
        return oid

    def target_position(self, symbol: str, quantity: Number, *, signal: str = "") -> str | None:
        """Queue the market order that moves the position to ``quantity`` (None if already there).

        Open orders of this strategy and intents queued in this callback count as done.
        """
        pos = self._portfolio.positions.get(symbol)  # ``position``, written out
        held = pos.quantity if pos is not None else ZERO
        return self._target(symbol, quantity, held, self._expected(symbol, held), signal)

    def _target(
        self, symbol: str, quantity: Number, held: Decimal, expected: Decimal, signal: str
    ) -> str | None:
        """``target_position`` given ``held``, the position, and ``expected``, what
        ``_expected(symbol, held)`` returns now: for a caller that has just read both
        (``SignalStrategy``), which saves reading them twice."""
        # As in ``order``: a Decimal as it is, anything else through ``_decimal`` (NaN if no
        # number, refused below).
        target = quantity if quantity.__class__ is Decimal else _decimal(quantity)
        if not target.is_finite():  # NaN failed later as a bare decimal.InvalidOperation
            raise ValueError(
                f"strategy {self.strategy_id}: target position {symbol} {quantity!r} "
                "(a finite number of units)"
            )
        delta = target - expected
        if delta == ZERO:  # Decimals compared with a Decimal: no int converted each time
            return None
        # Pure reductions are flagged so they pass a REDUCING/HALTED account.
        reducing = (
            held != ZERO
            and abs(target) < abs(held)
            and (target == ZERO or (target > ZERO) == (held > ZERO))
        )
        # ``self.order(side, symbol, abs(delta), reduce_only=reducing, signal=signal)``, written
        # out: the quantity is a finite Decimal above 0 (target and expected are finite), so its
        # checks pass, and the intent is a plain market one (``_market_intent``).
        oid = self._ids()
        if self._outbox is not None:
            self._outbox.append(self)
        self._intents.append(
            _market_intent(
                self.account,
                symbol,
                _BUY if delta > ZERO else _SELL,
                abs(delta),
                reducing,
                self.strategy_id,
                signal,
                oid,
            )
        )
        return oid

    def cancel(self, client_order_id: str) -> None:
        """Queue a cancel for one of this strategy's orders."""
        if self._outbox is not None:
            self._outbox.append(self)
        self._cancels.append(client_order_id)

    def cancel_all(self, symbol: str | None = None) -> None:
        """Queue cancels for every open order of this strategy (optionally one symbol)."""
        for order in self.open_orders(symbol):
            self.cancel(order.client_order_id)

    @property
    def has_pending(self) -> bool:
        """Return True if intents or cancels are queued."""
        return bool(self._intents or self._cancels)

    def drain(self) -> tuple[list[OrderIntent], list[str]]:
        """Return and clear the queued intents and cancels (runner use)."""
        intents, cancels = self._intents, self._cancels
        self._intents, self._cancels = [], []
        return intents, cancels
