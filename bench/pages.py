"""Each dashboard page's first load (server time) with 1,000,000 fills stored, on PostgreSQL.

    .venv/bin/python bench/pages.py [--pg-url URL] [--fills 1000000] [--loads 40]

Seeds one account with ``--fills`` filled orders and their fills (PostgreSQL ``COPY``, once: a
database that already holds them is reused), 30 days of hourly equity snapshots and 1m bars, then
times each page's GET through Django's test client (the whole view, template and middleware; no
network): p50/p99 over ``--loads`` loads after one warm-up, beside ``/login/`` (a page that reads
nothing) measured in the same run, as a ratio, and the median CPU time of this process per load
(Python: view, ORM, template; not PostgreSQL's own) with the load average, so a run on a busy
machine can be judged. The performance page's trade metrics come from a tally of the round trips
kept in the database: the first view with no stored tally builds it in a background thread; then
a fresh web process (a new interpreter: ``--fresh``) is timed from its start to the full trade
figures, wall and CPU (its own process, all threads); both before the pages are timed. Target:
p99 < 100 ms for every page. Never run by CI; reaches only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

STARTED = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PAGES = ["/", "/market/?symbol=BTC-USD&tf=1m", "/orders/", "/performance/", "/risk/",
         "/models/", "/backtests/", "/system/"]  # fmt: skip
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def setup(pg_url: str) -> None:
    from bench.common import ensure_pg_database

    ensure_pg_database(pg_url)
    os.environ["DATABASE_URL"] = pg_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
    os.environ.setdefault("RRR_DATA_DIR", str(ROOT / "data" / "bench-pages"))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(fills: int) -> tuple[object, object]:
    """Return (user, account), seeding the account's fills with COPY unless already there."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection

    from marketdata.models import Bar, Symbol
    from trading.models import Account, Fill, PortfolioSnapshot

    user, _ = get_user_model().objects.get_or_create(username="bench-pages")
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    symbol, _ = Symbol.objects.get_or_create(name="BTC-USD", defaults={"active": True})
    account, _ = Account.objects.get_or_create(
        name="bench-pages", defaults={"mode": "paper", "initial_capital": 100000, "cash": 100000}
    )
    account.members.add(user)
    have = Fill.objects.filter(account=account).count()
    if have >= fills:
        print(f"reusing {have:,} stored fills")
        analyze()
        return user, account
    Fill.objects.filter(account=account).delete()
    account.orders.all().delete()
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM trading_order")
        base = cur.fetchone()[0]
        orders, rows = io.StringIO(), io.StringIO()
        for i in range(fills):
            ts = (T0 + timedelta(seconds=2 * i)).isoformat()
            side = "buy" if i % 2 == 0 else "sell"
            price = f"{40000 + (i % 997) * 1.5:.2f}"
            orders.write(
                f"{base + i + 1}\t{uuid.UUID(int=i + 1)}\t\t{side}\tmarket\tgtc\t0.0100000000\t\\N"
                f"\t\\N\t\\N\t\\N\tf\tfilled\t0.0100000000\t{price}\t0.0400000000\tbench\t\t\t{{}}"
                f"\t{ts}\t{ts}\t{ts}\t{account.pk}\t\\N\t{symbol.pk}\t\\N\n"
            )
            rows.write(
                f"{side}\t0.0100000000\t{price}\t0.0400000000\ttaker\t\t{ts}\t{account.pk}"
                f"\t{symbol.pk}\t{base + i + 1}\n"
            )
        columns = ("id, client_order_id, venue_order_id, side, type, time_in_force, quantity, "
                   "price, stop_price, trail_amount, trail_percent, reduce_only, status, "
                   "filled_quantity, average_fill_price, fees, strategy, signal, reject_reason, "
                   "metadata, created_at, updated_at, closed_at, account_id, parent_id, "
                   "symbol_id, cancel_requested_at")  # fmt: skip
        with cur.cursor.copy(f"COPY trading_order ({columns}) FROM STDIN") as copy:
            copy.write(orders.getvalue())
        with cur.cursor.copy(
            "COPY trading_fill (side, quantity, price, fee, liquidity, venue_trade_id, ts, "
            "account_id, symbol_id, order_id) FROM STDIN"
        ) as copy:
            copy.write(rows.getvalue())
        cur.execute("SELECT setval(pg_get_serial_sequence('trading_order', 'id'), "
                    "(SELECT MAX(id) FROM trading_order))")  # fmt: skip
    PortfolioSnapshot.objects.filter(account=account).delete()
    PortfolioSnapshot.objects.bulk_create(
        PortfolioSnapshot(account=account, ts=T0 + timedelta(hours=h), cash=100000,
                          equity=100000 + (h % 50) * 10, total_value=100000 + (h % 50) * 10,
                          drawdown=0.0)
        for h in range(24 * 30)
    )  # fmt: skip
    Bar.objects.filter(symbol=symbol).delete()
    Bar.objects.bulk_create(
        Bar(symbol=symbol, timeframe="1m", ts=T0 + timedelta(minutes=m), open=40000,
            high=40010, low=39990, close=40000 + m % 7, volume=1)
        for m in range(60 * 24 * 30)
    )  # fmt: skip
    print(f"seeded {fills:,} orders and fills with COPY in {time.perf_counter() - started:.1f} s")
    analyze()
    return user, account


def analyze() -> None:
    """Refresh the planner's statistics of the seeded tables (autovacuum would, later)."""
    from django.db import connection

    with connection.cursor() as cur:
        for table in ("trading_order", "trading_fill", "trading_portfoliosnapshot",
                      "marketdata_bar"):  # fmt: skip
            cur.execute(f"ANALYZE {table}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def tally_ready(client) -> tuple[float, float]:
    """Load /performance/ until its trade figures are there; return (wall s, CPU s) taken."""
    started, started_cpu = time.perf_counter(), time.process_time()
    while b"being tallied" in client.get("/performance/").content:
        time.sleep(0.2)
    return time.perf_counter() - started, time.process_time() - started_cpu


def fresh() -> int:
    """``--fresh``: a new web process's first view of the trade figures, from its own start."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.get(username="bench-pages")  # seeded by the parent
    client = Client()
    client.force_login(user)
    tally_ready(client)
    print(f"{time.perf_counter() - STARTED:.2f} {time.process_time():.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/rrr_bench_pages")
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--loads", type=int, default=40)
    parser.add_argument("--fresh", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fresh:
        os.environ["DATABASE_URL"] = args.pg_url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
        os.environ.setdefault("RRR_DATA_DIR", str(ROOT / "data" / "bench-pages"))
        import django

        django.setup()
        return fresh()
    setup(args.pg_url)
    from django.test import Client

    user, account = seed(args.fills)
    client = Client()
    client.force_login(user)

    def timed(path: str) -> tuple[list[float], list[float]]:
        assert client.get(path).status_code == 200, path  # warm-up (and the check it renders)
        times, cpu = [], []
        for _ in range(args.loads):
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
            assert response.status_code == 200, path
        return times, cpu

    load = lambda: " ".join(f"{x:.2f}" for x in os.getloadavg())  # noqa: E731
    print(f"load average at start: {load()}")
    # The performance page's trade metrics come from a tally of the round trips kept in the
    # database: built once in a background thread on the first view, then extended by each load.
    wall, cpu = tally_ready(client)
    print(f"performance trade tally, first view in this process: ready after {wall:.1f} s "
          f"({cpu:.1f} s CPU)")  # fmt: skip
    child = subprocess.run(
        [sys.executable, __file__, "--fresh", "--pg-url", args.pg_url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall, cpu = (float(x) for x in child.stdout.split()[-2:])
    print(f"performance trade tally, a fresh web process: full trade figures {wall:.2f} s after "
          f"its start ({cpu:.2f} s CPU, its imports and Django setup included)")  # fmt: skip
    reference, ref_cpu = timed("/login/")
    ref50 = percentile(reference, 50)
    print(f"{'page':<34}{'p50 ms':>9}{'p99 ms':>9}{'p50/ref':>9}{'CPU ms':>9}"
          "  target p99 < 100 ms")  # fmt: skip
    print(f"{'/login/ (reference)':<34}{ref50:>9.1f}{percentile(reference, 99):>9.1f}"
          f"{1:>9.1f}{percentile(ref_cpu, 50):>9.1f}")  # fmt: skip
    slow = []
    for path in PAGES:
        times, cpu = timed(path)
        p50, p99 = percentile(times, 50), percentile(times, 99)
        flag = "" if p99 < 100 else "  over"
        if flag:
            slow.append(path)
        print(f"{path:<34}{p50:>9.1f}{p99:>9.1f}{p50 / ref50:>9.1f}"
              f"{percentile(cpu, 50):>9.1f}{flag}")  # fmt: skip
    print(
        f"{len(PAGES) - len(slow)} of {len(PAGES)} pages under 100 ms p99"
        + (f"; over: {', '.join(slow)}" if slow else "")
    )
    print(f"load average at end: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
