"""Order path benchmark: intent → pre-trade hook → OMS → paper fill → portfolio update.

Measured in memory (the real RiskChecker with 20 limits as the hook) and with persistence through
the runtime's own ``TradingStore`` (one transaction per batch, as ``runtrader`` flushes) on SQLite
and PostgreSQL. The same run measures a reference: the raw database speed of inserting the same
order and fill rows (``executemany`` on SQLite, ``COPY`` on PostgreSQL), and prints ratios.

    .venv/bin/python bench/trading_order_path.py [--orders 20000] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from marketdata.engine.events import BookSnapshot  # noqa: E402
from risk.engine.checks import RiskChecker  # noqa: E402
from risk.engine.limits import LimitSpec  # noqa: E402
from trading.engine.oms import OrderManager  # noqa: E402
from trading.engine.orders import OrderIntent, OrderSide  # noqa: E402
from trading.engine.portfolio import Portfolio  # noqa: E402
from trading.engine.venue import PaperVenue, VenueConfig  # noqa: E402

T0 = datetime(2024, 1, 1, tzinfo=UTC)
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/rrr_bench_trading")


def limits() -> list[LimitSpec]:
    """Twenty enabled limits of every kind (generous, so orders pass the whole check set)."""
    specs = [
        LimitSpec("max_order_notional", "1000000"),
        LimitSpec("max_position_pct", "5"),
        LimitSpec("max_gross_exposure_pct", "50"),
        LimitSpec("max_net_exposure_pct", "50"),
        LimitSpec("max_open_orders", "100000"),
        LimitSpec("price_band_bps", "1000"),
        LimitSpec("max_daily_loss_pct", "0.9"),
        LimitSpec("max_drawdown_pct", "0.9"),
        LimitSpec("max_correlation", "0.99"),
        LimitSpec("max_order_rate", "100000000", params={"window_seconds": 60}),
    ]
    specs += [
        LimitSpec("max_order_notional", "2000000", scope="symbol", scope_value=f"S{i}")
        for i in range(10)
    ]
    return specs


def book(symbol: str, ts: datetime) -> BookSnapshot:
    """A deep 10-level book around 100."""
    bids = tuple((100.0 - 0.01 * i, 1_000.0) for i in range(1, 11))
    asks = tuple((100.0 + 0.01 * i, 1_000.0) for i in range(1, 11))
    return BookSnapshot(symbol, ts, bids, asks)


def build(listeners=()) -> tuple[OrderManager, list[str]]:
    """An OMS with the RiskChecker hook, one account and 50 symbols with books."""
    symbols = [f"S{i}-USD" for i in range(50)]
    venue = PaperVenue(VenueConfig(taker_fee_bps=Decimal("10")))
    oms = OrderManager(
        venue,
        hook=RiskChecker(limits()),
        listeners=listeners,
        portfolios=[Portfolio("bench", Decimal("10000000"), ts=T0)],
    )
    for symbol in symbols:
        oms.on_book(book(symbol, T0))
    return oms, symbols


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def run_orders(oms: OrderManager, symbols: list[str], n: int, on_order=None) -> dict:
    """Send ``n`` market orders (alternating sides over 50 symbols); time each one."""
    latencies = []
    clock = time.perf_counter
    started = clock()
    for i in range(n):
        now = T0 + timedelta(milliseconds=i)
        side = OrderSide.BUY if (i // 50) % 2 == 0 else OrderSide.SELL
        intent = OrderIntent(
            account="bench",
            symbol=symbols[i % 50],
            side=side,
            quantity=Decimal("1.5"),
            strategy="bench",
        )
        t = clock()
        oms.submit(intent, now)
        if on_order is not None:
            on_order(i, now)
        latencies.append(clock() - t)
    elapsed = clock() - started
    return {
        "orders": n,
        "seconds": elapsed,
        "orders_per_s": n / elapsed,
        "p50_us": percentile(latencies, 50) * 1e6,
        "p99_us": percentile(latencies, 99) * 1e6,
    }


def in_memory(n: int) -> dict:
    """Measure the pure order path."""
    oms, symbols = build()
    run_orders(oms, symbols, min(n, 2000))  # warm-up
    oms, symbols = build()
    return run_orders(oms, symbols, n)


def persisted(n: int, batch: int) -> dict:
    """Measure the order path with the runtime's batched, transactional persistence."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from marketdata.models import Symbol
    from trading.models import Account, Fill, Order, Position
    from trading.persistence import TradingStore
    from trading.runtime import Recorder

    call_command("migrate", verbosity=0)
    Fill.objects.all().delete()
    Position.objects.all().delete()
    Order.objects.all().delete()
    Account.objects.filter(name="bench").delete()
    Account.objects.create(
        name="bench", initial_capital=Decimal("10000000"), cash=Decimal("10000000")
    )
    for i in range(50):
        Symbol.objects.get_or_create(name=f"S{i}-USD", defaults={"base": f"S{i}", "quote": "USD"})
    recorder = Recorder()
    oms, symbols = build([recorder])
    store = TradingStore("bench")
    pending: list[float] = []
    commit_latency: list[float] = []

    def flush(i: int, now: datetime) -> None:
        pending.append(time.perf_counter())
        if (i + 1) % batch == 0:
            store.write(recorder.cut(oms, "bench", now))
            done = time.perf_counter()
            commit_latency.extend(done - t for t in pending)
            pending.clear()

    result = run_orders(oms, symbols, n, on_order=flush)
    result["commit_p50_ms"] = percentile(commit_latency, 50) * 1e3
    result["commit_p99_ms"] = percentile(commit_latency, 99) * 1e3
    result["stored_orders"] = Order.objects.count()
    result["stored_fills"] = Fill.objects.count()
    result["raw_rows_per_s"] = raw_reference(connection, n)
    result["vendor"] = connection.vendor
    return result


def raw_reference(connection, n: int) -> float:
    """Insert ``n`` order-shaped and ``n`` fill-shaped rows the fastest raw way; rows/s."""
    rows = [(i, "S1-USD", "buy", "1.5", "100.01", "0.15", f"t{i}") for i in range(n)]
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_raw")
        cursor.execute(
            "CREATE TABLE bench_raw (id bigint, symbol varchar(32), side varchar(4), "
            "quantity numeric(28,10), price numeric(28,10), fee numeric(28,10), "
            "trade_id varchar(64))"
        )
        started = time.perf_counter()
        for _ in range(2):  # orders and fills
            if connection.vendor == "postgresql":
                with cursor.cursor.copy("COPY bench_raw FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(
                    "INSERT INTO bench_raw VALUES (%s, %s, %s, %s, %s, %s, %s)", rows
                )
        connection.commit() if not connection.get_autocommit() else None
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_raw")
    return 2 * n / elapsed


def child(backend: str, n: int, batch: int) -> None:
    """Run the persisted benchmark on one backend and print JSON (a subprocess)."""
    print(json.dumps(persisted(n, batch)))


def spawn(backend: str, n: int, batch: int) -> dict:
    """Run ``child`` for ``backend`` in a fresh interpreter with that database configured."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="rrr_site.settings", LOG_LEVEL="WARNING")
    env.pop("REDIS_URL", None)
    tmp = tempfile.mkdtemp(prefix="rrr-bench-")
    env["RRR_DATA_DIR"] = tmp
    if backend == "postgres":
        env["DATABASE_URL"] = PG_URL
        dbname = PG_URL.rsplit("/", 1)[1]
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qc",
                f"DROP DATABASE IF EXISTS {dbname}",
                "-c",
                f"CREATE DATABASE {dbname}",
            ],
            check=True,
            capture_output=True,
        )
    else:
        env.pop("DATABASE_URL", None)
        env["SQLITE_PATH"] = str(Path(tmp) / "bench.db")
    out = subprocess.run(
        [sys.executable, __file__, "--child", backend, "--orders", str(n), "--batch", str(batch)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{backend} benchmark failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="orders per persisted batch")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.orders, args.batch)
        return
    print(f"order path benchmark: {args.orders} market orders, 50 symbols, 20 risk limits")
    memory = in_memory(args.orders)
    rows = [("in memory", memory, None)]
    for backend in [b for b in args.backends.split(",") if b]:
        print(f"  running persisted on {backend} ...", flush=True)
        rows.append((f"persisted {backend}", spawn(backend, args.orders, args.batch), backend))
    print(
        f"\n{'path':<22}{'orders/s':>12}{'p50 µs':>10}{'p99 µs':>10}"
        f"{'commit p99 ms':>15}{'raw rows/s':>13}{'ratio':>8}"
    )
    for name, r, backend in rows:
        commit = f"{r['commit_p99_ms']:.1f}" if backend else "-"
        raw = f"{r['raw_rows_per_s']:,.0f}" if backend else "-"
        # Each order writes an order row and a fill row: compare rows/s with the raw load.
        ratio = f"{2 * r['orders_per_s'] / r['raw_rows_per_s']:.0%}" if backend else "-"
        print(
            f"{name:<22}{r['orders_per_s']:>12,.0f}{r['p50_us']:>10.1f}{r['p99_us']:>10.1f}"
            f"{commit:>15}{raw:>13}{ratio:>8}"
        )
    print(
        "\ntargets: in memory >= 5,000 orders/s with p99 < 2 ms; persisted PostgreSQL >= 1,000"
        " orders/s (product promise: 100 orders/s, < 50 ms signal-to-exchange)"
    )
    verdicts = [
        ("in memory >= 5,000/s", memory["orders_per_s"] >= 5000),
        ("in memory p99 < 2 ms", memory["p99_us"] < 2000),
    ]
    for _name, r, backend in rows:
        if backend == "postgres":
            verdicts.append(("postgres >= 1,000/s", r["orders_per_s"] >= 1000))
    for name, ok in verdicts:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    main()
