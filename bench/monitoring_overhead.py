"""Monitoring overhead and alert delivery, measured.

1. Tick-to-order on the engine's loop path (``runtrader``'s per-event work: pipeline, metrics
   hooks, session, strategy, risk checks, OMS, paper venue) with the Prometheus hooks on and
   off, in interleaved rounds (ABBA); the median over rounds of the p99 ratio, and of the CPU
   time per tick, is the metrics' cost (target < 1.05; the best round is printed beside it).
   ``--instructions TICKS`` counts instructions per tick under callgrind (PYTHONHASHSEED=0),
   one process per mode: exactly repeatable on a loaded machine, where wall-clock p99s are not.
2. Alert delivery latency from a stored risk event (``risk_events_record`` → ``alert_raise`` →
   django-q2 delivery → Apprise → HTTP) to a local Slack webhook sink, next to a bare HTTP POST
   to the same sink (the floor), on SQLite.
3. Deduplication under a burst of 1,000 identical events: exactly one delivery, 999 counted;
   then the same from 4 threads at once (each its own connection): the database's one-unresolved-
   alert constraint keeps it to one alert and one delivery.

    .venv/bin/python bench/monitoring_overhead.py [--ticks 60000] [--rounds 8] [--alerts 200]
        [--engine-only] [--instructions 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import latency_summary, print_table, setup_django  # noqa: E402

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _trades(count: int, symbols: list[str]):
    """A deterministic random walk of trades, 10 per second per symbol."""
    import random

    from marketdata.engine.events import Trade

    rng = random.Random(7)
    prices = dict.fromkeys(symbols, 100.0)
    out = []
    for i in range(count):
        symbol = symbols[i % len(symbols)]
        prices[symbol] *= 1 + rng.gauss(0, 0.0005)
        ts = T0 + timedelta(milliseconds=100 * (i // len(symbols)))
        out.append(Trade(symbol, ts, round(prices[symbol], 2), 0.5, trade_id=str(i)))
    return out


class FlipEveryBar:
    """Strategy: buy on one bar close, sell on the next (an order every bar per symbol)."""

    @staticmethod
    def build():
        from trading.engine.strategy import Strategy

        class Flip(Strategy):
            def on_bar(self, bar, ctx) -> None:
                if ctx.position(bar.symbol) > 0:
                    ctx.sell(bar.symbol, Decimal("0.01"))
                else:
                    ctx.buy(bar.symbol, Decimal("0.01"))

        return Flip()


class OrderClock:
    """OMS listener: records the tick-to-order latency of each new order.

    It is the OMS's first listener, so an order is timed as it leaves the OMS, before any other
    listener (the metrics' among them) sees it. A tick that closes two symbols' bars places two
    orders; the second is timed from the same tick start, so the first order's fill and order
    hooks (the metrics' too) count in it, as they would in ``runtrader``.
    """

    def __init__(self, clock=time.perf_counter) -> None:
        self.clock = clock
        self.tick_started = 0.0
        self.samples: list[float] = []
        self._seen: set[str] = set()

    def on_order(self, order) -> None:
        if order.client_order_id not in self._seen:
            self._seen.add(order.client_order_id)
            self.samples.append(self.clock() - self.tick_started)

    def on_fill(self, fill) -> None:
        pass


class _Handover:
    """What ``BenchFeed.events`` awaits: hands control back to ``step`` until the next event."""

    def __await__(self):
        return (yield self)


HANDOVER = _Handover()


class BenchFeed:
    """The runtime's feed: each ``step`` hands it one event, received (and timed) at once."""

    def __init__(self, order_clock: OrderClock) -> None:
        self.order_clock = order_clock
        self.last_received_at: float | None = None

    async def events(self):
        """Yield each event ``step`` sends, its receive time set as a real feed does."""
        monotonic, clock, order_clock = time.monotonic, self.order_clock.clock, self.order_clock
        while True:
            event = await HANDOVER
            self.last_received_at = monotonic()
            order_clock.tick_started = clock()
            yield event

    async def close(self) -> None:
        """Nothing to close."""


# The runtime flushes every 0.2 s; at a busy feed's 5,000 events a second that is 1,000 events.
FLUSH_EVERY = 1000


def engine_loop(symbols: list[str], with_metrics: bool, clock=time.perf_counter):
    """Build the loop path on a real ``TradingRuntime``; return (step(trade), the order clock,
    flush(), finish()).

    ``step`` hands one event to the runtime's own ``_consume`` (a coroutine driven by hand, no
    event loop: it runs ``_emit`` and ``_drain_risk`` too), so both modes run the runtime's
    code, the metrics lines included, as it is; they differ only in ``RuntimeConfig.metrics``.
    The OMS has the runtime's listeners (recorder, stops, then the metrics') behind the order
    clock. ``flush`` (every ``FLUSH_EVERY`` events, between ticks: ``engine_round``) is the
    runtime's flush without the database: ``FeedMetrics.sync`` (every batch published, the
    feed gauges set) and the cut of the recorder's batch, taken as stored. Left out in both
    modes: the market-data writer, the broadcasts and the database writes.
    """
    from bench.trading_order_path import limits
    from risk.engine.checks import RiskChecker
    from trading.engine.gate import ModeGate
    from trading.engine.oms import OrderManager
    from trading.engine.portfolio import Portfolio
    from trading.engine.runner import StrategyRunner
    from trading.engine.session import TradingSession
    from trading.engine.venue import PaperVenue, VenueConfig
    from trading.runtime import RuntimeConfig, TradingRuntime

    order_clock = OrderClock(clock)
    config = RuntimeConfig(account="bench", symbols=symbols, feed="bench", timeframe="1s",
                           store_market_data=False, metrics=with_metrics)  # fmt: skip
    runtime = TradingRuntime(config, BenchFeed(order_clock))
    runtime.db.shutdown()  # no database here: ``_db`` would fail loudly
    runtime.risk = RiskChecker(limits())
    runtime.oms = OrderManager(  # as ``setup`` builds it, the order clock first
        PaperVenue(VenueConfig(taker_fee_bps=config.taker_fee_bps,
                               maker_fee_bps=config.maker_fee_bps)),
        hook=runtime.risk,
        listeners=[order_clock, runtime.recorder, runtime.stops],
        portfolios=[Portfolio("bench", Decimal("1000000"), ts=T0)],
    )  # fmt: skip
    runtime._metrics_attach()
    runtime.runner = StrategyRunner(runtime.oms, bars_to_venue=False)
    runtime.runner.gate = runtime.gate = ModeGate(runtime.oms)
    runtime.runner.add(FlipEveryBar.build(), "bench", symbols=symbols)
    runtime.runner.start(T0)
    runtime.session = TradingSession(runtime.oms, runtime.runner, "bench", timeframe="1s",
                                     risk=runtime.risk, stops=runtime.stops)  # fmt: skip
    consume = runtime._consume(asyncio.Event())
    send = consume.send
    assert send(None) is HANDOVER  # runs to the feed's first wait
    feed_metrics = runtime.feed_metrics

    def step(event) -> None:
        yielded = send(event)
        while yielded is not HANDOVER:  # the loop's turn every CONSUME_YIELD_EVERY events
            yielded = send(None)

    def flush() -> None:
        if feed_metrics is not None:
            feed_metrics.sync()
        runtime._cut(False)
        if runtime._unsaved is not None:
            runtime.recorder.stored(runtime._unsaved)
            runtime._unsaved = None

    def finish() -> None:
        flush()
        consume.close()

    return step, order_clock, flush, finish


def engine_round(trades, symbols: list[str], with_metrics: bool, clock=time.perf_counter):
    """Run the loop path over ``trades``; return tick-to-order latencies (seconds of ``clock``)."""
    step, order_clock, flush, finish = engine_loop(symbols, with_metrics, clock)
    for i, trade in enumerate(trades, 1):
        step(trade)
        if i % FLUSH_EVERY == 0:
            flush()
    finish()
    return order_clock.samples


def bench_engine(ticks: int, rounds: int) -> dict:
    """Interleaved rounds (ABBA order) with and without metrics: wall p99, CPU per tick.

    The collector is set as ``runtrader`` sets it (``quiet_collector``). Each round's p99
    rests on its 1 % slowest orders (about 60 of 6,000 at the default 60,000
    ticks); the p99 of every round's orders pooled (8 rounds: about 480) is printed beside the
    median of the rounds' p99s, and the collections the garbage collector ran per round.
    """
    symbols = ["BTC-USD", "ETH-USD"]
    trades = _trades(ticks, symbols)
    engine_round(trades[:2000], symbols, True)  # warm up imports and caches
    runs = {True: [], False: []}
    pooled = {True: [], False: []}
    cpu = {True: [], False: []}
    collections = {True: [0, 0, 0], False: [0, 0, 0]}
    counting = [0, 0, 0]

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            counting[info["generation"]] += 1

    from trading.management.commands.runtrader import quiet_collector

    restore_collector = quiet_collector()  # runtrader's: loaded code frozen, 10k young objects
    gc.callbacks.append(count)
    try:
        for r in range(rounds):
            for with_metrics in (False, True) if r % 2 == 0 else (True, False):
                gc.collect()
                counting[:] = [0, 0, 0]
                started = time.process_time()
                samples = engine_round(trades, symbols, with_metrics)
                cpu[with_metrics].append((time.process_time() - started) / len(trades) * 1e6)
                for generation, seen in enumerate(counting):
                    collections[with_metrics][generation] += seen
                runs[with_metrics].append(latency_summary(samples))
                pooled[with_metrics].extend(samples)
    finally:
        gc.callbacks.remove(count)
        restore_collector()
    best = {k: min(v, key=lambda s: s["p99"]) for k, v in runs.items()}
    pools = {k: latency_summary(v) for k, v in pooled.items()}
    rows = []
    for with_metrics, label in ((False, "without metrics"), (True, "with metrics")):
        pool, each = pools[with_metrics], runs[with_metrics]
        rows.append((
            label,
            f"{each[0]['count']} x {rounds}",
            pool["p50"],
            statistics.median(s["p99"] for s in each),
            pool["p99"],
            f"{pool['p99'] / pools[False]['p99']:.3f}",
            "/".join(f"{n / rounds:g}" for n in collections[with_metrics]),
        ))  # fmt: skip
    print_table(
        ["tick-to-order", "orders", "p50 ms", "p99 ms (median)", "p99 ms (pooled)",
         "pooled ratio", "gc per round (gen 0/1/2)"],
        rows,
        title=f"engine loop path, {ticks} ticks, {rounds} interleaved rounds",
    )  # fmt: skip
    medians = {k: statistics.median(s["p99"] for s in v) for k, v in runs.items()}
    cpu_median = {k: statistics.median(v) for k, v in cpu.items()}
    ratio = best[True]["p99"] / best[False]["p99"]
    median_ratio = medians[True] / medians[False]
    pooled_ratio = pools[True]["p99"] / pools[False]["p99"]
    print(
        f"CPU time per tick (median of rounds): without {cpu_median[False]:.2f} us, with "
        f"{cpu_median[True]:.2f} us, ratio {cpu_median[True] / cpu_median[False]:.3f}"
    )
    cpu_ratio = cpu_median[True] / cpu_median[False]
    verdict = "ok" if median_ratio < 1.05 and cpu_ratio < 1.05 else "MISS"
    print(
        f"tick-to-order p99, median of {rounds} rounds: {medians[False]:.4f} ms without metrics "
        f"and {medians[True]:.4f} ms with them: {median_ratio:.3f}x (pooled {pooled_ratio:.3f}x, "
        f"best round {ratio:.3f}x; CPU per tick {cpu_ratio:.3f}x), target < 1.05: {verdict}"
    )
    return {
        "best": best,
        "median_p99_ratio": median_ratio,
        "pooled_p99_ratio": pooled_ratio,
        "cpu_us_per_tick": cpu_median,
    }


def engine_instructions(ticks: int, with_metrics: bool, part: str) -> None:
    """Run one round, ``part`` of it inside ``Context.run`` (which callgrind is told to count):
    ``all`` (every tick and the final publish) or ``order-ticks`` (only the ticks that place an
    order: the tick-to-order windows, each with what follows the order in its tick)."""
    import contextvars

    symbols = ["BTC-USD", "ETH-USD"]
    trades = _trades(ticks, symbols)
    engine_round(trades[:2000], symbols, with_metrics)  # imports and caches, not counted
    from trading.management.commands.runtrader import quiet_collector

    quiet_collector()  # runtrader's collector settings
    gc.collect()
    run = contextvars.copy_context().run
    if part == "all":
        run(engine_round, trades, symbols, with_metrics)
        return
    step, order_clock, flush, finish = engine_loop(symbols, False)  # which ticks place orders
    placing = set()
    for i, trade in enumerate(trades, 1):
        before = len(order_clock.samples)
        step(trade)
        if len(order_clock.samples) > before:
            placing.add(i)
        if i % FLUSH_EVERY == 0:
            flush()
    step, order_clock, flush, finish = engine_loop(symbols, with_metrics)
    for i, trade in enumerate(trades, 1):
        if i in placing:
            run(step, trade)
        else:
            step(trade)
        if i % FLUSH_EVERY == 0:  # the runtime's flush task: not the ticks' work
            flush()
    finish()
    assert len(order_clock.samples) == len(engine_round(trades, symbols, False))
    print(f"order ticks: {len(placing)}", file=sys.stderr)


def bench_instructions(ticks: int) -> dict | None:
    """Instructions per tick with and without metrics, counted by callgrind (load-proof).

    Each mode and part runs in its own process under ``valgrind --tool=callgrind``, collecting
    only inside ``context_run`` (CPython's ``Context.run``): a whole round, or the ticks that
    place orders.
    """
    import re
    import shutil
    import subprocess
    import tempfile

    if shutil.which("valgrind") is None:
        print("\ninstructions per tick: valgrind not found, skipped")
        return None
    per_tick: dict[tuple[str, bool], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for part in ("all", "order-ticks"):
            for with_metrics in (False, True):
                command = [
                    "valgrind",
                    "--tool=callgrind",
                    "--collect-atstart=no",
                    "--toggle-collect=context_run",
                    f"--callgrind-out-file={tmp}/out.%p",
                    sys.executable,
                    __file__,
                    "--instructions-child",
                    str(ticks),
                    "--part",
                    part,
                    "--with-metrics" if with_metrics else "--without-metrics",
                ]
                env = {**os.environ, "PYTHONHASHSEED": "0"}
                done = subprocess.run(command, capture_output=True, text=True, env=env)
                found = re.search(r"Collected : (\d+)", done.stderr)
                assert done.returncode == 0 and found, done.stderr[-3000:]
                placed = re.search(r"order ticks: (\d+)", done.stderr)
                per_tick[(part, with_metrics)] = int(found.group(1)) / (
                    ticks if part == "all" else int(placed.group(1))
                )
    rows = []
    for part, title in (("all", "every tick (and the publish)"), ("order-ticks", "order ticks")):
        without, with_ = per_tick[(part, False)], per_tick[(part, True)]
        rows.append((f"{title}, without metrics", round(without), "1.000", "reference"))
        rows.append((f"{title}, with metrics", round(with_), f"{with_ / without:.3f}", "< 1.05"))
    print_table(
        ["engine loop path", "instructions per tick", "ratio", "target"],
        rows,
        title=f"instructions per tick, {ticks} ticks (callgrind, PYTHONHASHSEED=0)",
    )
    return {"instructions_per_tick": per_tick}


def bench_alerts(count: int) -> dict:
    """Alert delivery latency and the dedup burst, against a local Slack webhook sink."""
    setup_django()
    from django.conf import settings
    from django.core.management import call_command

    from monitoring.models import Alert, AlertDelivery, AlertRule
    from risk.engine.events import RiskEventRecord, Severity
    from risk.services import risk_events_record
    from tests.fakes.notify import FakeAlertServices
    from tests.fakes.threaded import served
    from trading.models import Account

    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    account = Account.objects.get(name="paper")
    sink = FakeAlertServices()
    with served(sink):
        settings.SLACK_WEBHOOK_BASE = f"{sink.url}/services"
        AlertRule.objects.create(
            name="bench",
            source="risk",
            min_severity="warning",
            channel="slack",
            target="https://hooks.slack.com/services/T0/B0/X0",
            cooldown_seconds=0,
            max_per_hour=0,
        )
        floor, delivered = [], []
        body = json.dumps({"text": "floor"}).encode()
        for i in range(count):
            started = time.perf_counter()
            request = urllib.request.Request(
                f"{sink.url}/services/T0/B0/X0", body, {"Content-Type": "application/json"}
            )
            urllib.request.urlopen(request, timeout=5).read()
            floor.append(time.perf_counter() - started)
            before = len(sink.slack)
            started = time.perf_counter()
            record = RiskEventRecord(
                Severity.CRITICAL,
                f"bench_{i}",
                f"limit {i} breached",
                {},
                account.name,
                datetime.now(UTC),
            )
            risk_events_record(account=account, records=[record], publish=False)
            assert len(sink.slack) == before + 1, "the alert did not reach the sink"
            delivered.append(sink.received_at[-1] - started)
        lat, ref = latency_summary(delivered), latency_summary(floor)
        print_table(
            ["path", "count", "p50 ms", "p99 ms", "p99 ratio"],
            [
                (
                    "bare HTTP POST to the sink (floor)",
                    ref["count"],
                    ref["p50"],
                    ref["p99"],
                    "1.00",
                ),
                (
                    "risk event -> alert -> Slack sink",
                    lat["count"],
                    lat["p50"],
                    lat["p99"],
                    f"{lat['p99'] / ref['p99']:.1f}",
                ),
            ],
            title="alert delivery latency (SQLite, django-q2 sync, Apprise)",
        )
        AlertRule.objects.all().update(cooldown_seconds=300)
        sent_before = len(sink.slack)
        started = time.perf_counter()
        for i in range(1000):
            record = RiskEventRecord(
                Severity.CRITICAL, "burst", f"burst {i}", {}, account.name, datetime.now(UTC)
            )
            risk_events_record(account=account, records=[record], publish=False)
        elapsed = time.perf_counter() - started
        alert = Alert.objects.get(kind="burst")
        delivered_burst = len(sink.slack) - sent_before
        sent_before = len(sink.slack)
        threaded, threaded_elapsed = _threaded_burst(account, "burst_threads")
        threaded_delivered = len(sink.slack) - sent_before
        print_table(
            ["burst", "events", "delivered", "counted (deduplicated)", "per event ms", "target"],
            [
                (
                    "1,000 identical risk events",
                    1000,
                    delivered_burst,
                    alert.deduplicated,
                    elapsed / 1000 * 1000,
                    "1 / 999",
                ),
                (
                    "the same from 4 threads at once",
                    1000,
                    threaded_delivered,
                    threaded.deduplicated,
                    threaded_elapsed / 1000 * 1000,
                    "1 / 999",
                ),
            ],
            title="deduplication",
        )
        assert delivered_burst == 1 and alert.deduplicated == 999, (delivered_burst, alert)
        assert AlertDelivery.objects.filter(alert=alert).count() == 1
        assert threaded_delivered == 1 and threaded.deduplicated == 999, threaded
        assert AlertDelivery.objects.filter(alert__kind="burst_threads").count() == 1
    return {
        "latency_ms": lat,
        "floor_ms": ref,
        "burst_delivered": delivered_burst,
        "burst_counted": alert.deduplicated,
    }


def _threaded_burst(account, kind: str, threads: int = 4, total: int = 1000):
    """Raise ``total`` identical risk events from ``threads`` threads released together."""
    import threading

    from django.db import connections

    from monitoring.models import Alert
    from risk.engine.events import RiskEventRecord, Severity
    from risk.services import risk_events_record

    barrier, errors = threading.Barrier(threads + 1), []

    def burst() -> None:
        try:
            barrier.wait(30)
            for i in range(total // threads):
                record = RiskEventRecord(
                    Severity.CRITICAL, kind, f"{kind} {i}", {}, account.name, datetime.now(UTC)
                )
                risk_events_record(account=account, records=[record], publish=False)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=burst) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait(30)
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    assert not errors, errors
    return Alert.objects.get(kind=kind), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=60000)
    parser.add_argument("--rounds", type=int, default=8, help="an even number keeps ABBA even")
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--engine-only", action="store_true", help="skip the alert benches")
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="TICKS",
        help="also count instructions per tick under callgrind over TICKS ticks (e.g. 6000)",
    )
    parser.add_argument("--instructions-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--part", default="all", help=argparse.SUPPRESS)
    parser.add_argument(
        "--with-metrics", dest="with_metrics", action="store_true", help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--without-metrics", dest="with_metrics", action="store_false", help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
    if args.instructions_child:  # the engine part needs no database (the parent's settings)
        import django

        django.setup()
        engine_instructions(args.instructions_child, args.with_metrics, args.part)
        return 0
    if not args.engine_only:
        os.environ["Q_SYNC"] = "true"  # deliver inline: the latency measured is the whole path
        bench_alerts(args.alerts)  # sets Django up (the engine part needs none)
    else:
        setup_django()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    bench_engine(args.ticks, args.rounds)
    if args.instructions:
        bench_instructions(args.instructions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
