"""The event style's per-bar path (``StrategyRunner``) keeps a strategy's own code fast and right.

CPython 3.11 specialises ``self.x`` reads and writes only while an instance's attributes are not
turned into a ``__dict__`` object: reading ``strategy.__dict__`` once (as ``StrategyRunner.add``
did) made every attribute access of the strategy's ``on_bar`` take the slow path for the whole run.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from backtesting.engine.fills import BacktestVenue, FillConfig
from tests.backtesting.engine.helpers import bar, minute
from trading.engine.errors import TradingError
from trading.engine.oms import OrderManager
from trading.engine.portfolio import Portfolio
from trading.engine.runner import StrategyRunner
from trading.engine.strategy import Strategy


class _Watched(Strategy):
    """Records every attribute name read on it."""

    def __init__(self, **params) -> None:
        self.read: list[str] = []
        super().__init__(**params)

    def __getattribute__(self, name: str):
        if name != "read":
            object.__getattribute__(self, "read").append(name)
        return object.__getattribute__(self, name)


class _Hears(Strategy):
    def on_fill(self, fill, ctx) -> None:
        pass


class _HearsByClassMethod(Strategy):
    @classmethod
    def on_fill(cls, fill, ctx) -> None:
        pass


def _runner() -> StrategyRunner:
    oms = OrderManager(BacktestVenue(FillConfig()), portfolios=[Portfolio("a", Decimal(1000))])
    return StrategyRunner(oms, history_size=10)


def test_adding_and_running_a_strategy_never_reads_its_instance_dict() -> None:
    runner = _runner()
    strategy = _Watched()
    runner.add(strategy, "a")
    runner.start(minute(0))
    for i in range(3):
        runner.on_bar(bar(i, 100, 101, 99, 100))
    assert "on_bar" in strategy.read  # the probe sees the runner's reads
    assert "__dict__" not in strategy.read


def test_takes_fills_follows_the_class_and_the_instance() -> None:
    runner = _runner()
    plain, own = Strategy(), Strategy()
    own.on_fill = lambda fill, ctx: None  # type: ignore[method-assign]
    for strategy, sid in (
        (plain, "plain"),
        (own, "own"),
        (_Hears(), "hears"),
        (_HearsByClassMethod(), "classmethod"),
    ):
        runner.add(strategy, "a", strategy_id=sid)
    assert [slot.takes_fills for slot in runner._slots] == [False, True, True, True]


class _Trades(Strategy):
    """Buys on every third bar and sells what it holds on every fifth: orders, fills, marks."""

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.seen: list[tuple] = []

    def on_bar(self, bar, ctx) -> None:
        held = ctx.position(bar.symbol)
        self.seen.append((bar.ts, ctx.now, bar.close, held, len(ctx.history(bar.symbol, 5))))
        n = len(self.seen)
        if n % 5 == 0 and held:
            ctx.sell(bar.symbol, held)
        elif n % 3 == 0:
            ctx.buy(bar.symbol, Decimal("0.5"))

    def on_fill(self, fill, ctx) -> None:
        self.seen.append(("fill", fill.side, fill.quantity, fill.price, fill.ts))


def _bars(n: int) -> list:
    return [bar(i, 100 + i % 7, 103 + i % 7, 98 + i % 7, 101 + (i * 3) % 11) for i in range(n)]


def _traded(extra: bool, fail_at: int | None = None) -> tuple:
    oms = OrderManager(BacktestVenue(FillConfig()), portfolios=[Portfolio("a", Decimal(10000))])
    runner = StrategyRunner(oms, history_size=4)
    errors: list = []
    if fail_at is not None:
        runner.on_strategy_error = lambda account, sid, exc: errors.append(sid)
    trades = _Trades()
    runner.add(trades, "a")
    if extra:  # a second strategy that does nothing: the general loop runs
        runner.add(Strategy(), "a", strategy_id="idle")
    if fail_at is not None:
        calls = {"n": 0}
        real = trades.on_bar

        def on_bar(bar, ctx) -> None:
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise RuntimeError("boom")
            real(bar, ctx)

        trades.on_bar = on_bar  # type: ignore[method-assign]
    runner.start(minute(0))
    rows: list = []
    bars = _bars(40)
    runner.replay_bars(bars[:25], after=lambda row, b: rows.append((row, b.ts)))
    runner.replay_bars(bars[25:], start=25, after=lambda row, b: rows.append((row, b.ts)))
    pf = oms.portfolio("a")
    state = (pf.cash, {s: p.quantity for s, p in pf.positions.items()}, pf.equity)
    return trades.seen, rows, state, errors


def test_the_one_strategy_loop_does_what_the_general_loop_does() -> None:
    one, many = _traded(extra=False), _traded(extra=True)
    assert any(entry[0] == "fill" for entry in one[0])  # it traded
    assert one == many


def test_a_strategy_stopped_after_an_error_gets_no_more_bars_in_either_loop() -> None:
    one, many = _traded(extra=False, fail_at=12), _traded(extra=True, fail_at=12)
    assert one[3] == ["strategy"] and one == many
    bars_seen = [entry for entry in one[0] if entry[0] != "fill"]
    assert len(bars_seen) == 11  # bars 1-11, then the error stopped it


class _TradesDeaf(_Trades):
    """``_Trades`` without its own ``on_fill``: the base one, which does nothing."""

    on_fill = Strategy.on_fill


def test_the_oms_calls_the_runner_on_fills_only_while_a_strategy_takes_them() -> None:
    oms = OrderManager(BacktestVenue(FillConfig()), portfolios=[Portfolio("a", Decimal(10000))])
    runner = StrategyRunner(oms, history_size=4)
    heard: list = []
    own = runner.on_fill
    runner.on_fill = lambda fill: (heard.append(fill), own(fill))  # type: ignore[method-assign]
    deaf = _TradesDeaf()
    runner.add(deaf, "a", strategy_id="deaf")
    assert runner.listening == []
    runner.start(minute(0))
    bars = _bars(40)
    runner.replay_bars(bars[:20])
    assert any(entry[3] for entry in deaf.seen) and heard == []  # it held; none heard fills
    hears = _Trades()
    runner.add(hears, "a", strategy_id="hears")  # the list the OMS reads grows in place
    runner.start(minute(20))
    runner.replay_bars(bars[20:])
    fills = [entry for entry in hears.seen if entry[0] == "fill"]
    assert fills and heard and len(fills) == sum(f.strategy == "hears" for f in heard)


class _Chases(Strategy):
    """Buys on its first bar, then once more on each of its first two fills."""

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.fills = 0

    def on_bar(self, bar, ctx) -> None:
        if bar.ts == minute(0):
            ctx.buy(bar.symbol, Decimal("0.1"))

    def on_fill(self, fill, ctx) -> None:
        self.fills += 1
        if self.fills < 3:
            ctx.buy(fill.symbol, Decimal("0.1"))


def _chasing(max_rounds: int) -> tuple[StrategyRunner, _Chases]:
    oms = OrderManager(BacktestVenue(FillConfig()), portfolios=[Portfolio("a", Decimal(10000))])
    runner = StrategyRunner(oms, history_size=4, max_rounds=max_rounds)
    strategy = _Chases()
    runner.add(strategy, "a")
    runner.start(minute(0))
    return runner, strategy


def test_settle_counts_its_rounds_as_it_always_did() -> None:
    # A round that sends anything is followed by one that finds nothing: with one round allowed,
    # any submission is one round too many; with two, the fills' follow-up orders go out too.
    runner, _ = _chasing(1)
    with pytest.raises(TradingError, match="still trading after 1 rounds"):
        runner.replay_bars(_bars(2))
    runner, strategy = _chasing(2)
    runner.replay_bars(_bars(6))
    assert strategy.fills == 3


def test_settle_submits_what_a_submission_queued_in_the_same_call() -> None:
    runner, _ = _chasing(32)
    ctx = runner._slots[0].ctx
    seen: list = []

    def gate(intent) -> bool:  # queues one more order from inside the first submission
        seen.append(intent.quantity)
        if len(seen) == 1:
            ctx.buy(intent.symbol, Decimal("0.2"))
        return True

    runner.gate = gate
    runner.replay_bars(_bars(1))  # one bar: no fill, only the two submissions
    assert seen == [Decimal("0.1"), Decimal("0.2")]
    assert not runner._outbox and not ctx._intents
