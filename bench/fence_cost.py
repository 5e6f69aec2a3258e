"""What the account fence costs one write batch of the engine (issue #21).

``TradingStore.write`` stores a batch in one transaction; with the engine's fence registered
(``AccountFence.take``, as ``runtrader`` does) the transaction first runs one more statement,
``UPDATE trading_accountowner SET epoch = epoch WHERE account_id = ? AND epoch = ?``. This
writes the same batches (a new order filled at once: the order, its fill, the position and the
cash) with and without the fence, in interleaved rounds (ABAB), and prints the process CPU time
and wall time per batch and the statements per batch. On PostgreSQL the server's own work shows
in the wall time only.

    .venv/bin/python bench/fence_cost.py [--batches 400] [--rounds 6]
        [--database-url postgres://postgres@127.0.0.1:5432/rrr_bench_fence]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def setup(database_url: str | None) -> str:
    """Configure Django on a fresh database (a temporary SQLite file without a URL)."""
    os.environ.pop("REDIS_URL", None)
    os.environ["RRR_DATA_DIR"] = tempfile.mkdtemp(prefix="rrr-fence-")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "rrr_site.settings"
    if database_url:
        from bench.common import ensure_pg_database

        ensure_pg_database(database_url)
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ["SQLITE_PATH"] = str(Path(os.environ["RRR_DATA_DIR"]) / "fence.sqlite3")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))  # noqa: SIM115
    from django.db import connection

    return connection.vendor


def batches(n: int, start: int):
    """Return ``n`` batches, each a market buy filled at once (order, fill, position, cash)."""
    from trading.engine.orders import Fill, Liquidity, OrderSide, OrderStatus
    from trading.engine.orders import Order as EngineOrder
    from trading.engine.portfolio import PositionSnapshot
    from trading.persistence import TradingBatch

    t0 = datetime(2026, 12, 7, tzinfo=UTC)
    out = []
    for i in range(start, start + n):
        ts = t0 + timedelta(seconds=i)
        qty, price = Decimal("0.001"), Decimal("50000") + i
        order = EngineOrder(
            symbol="BTC-USD", side=OrderSide.BUY, quantity=qty, account="paper",
            status=OrderStatus.FILLED, filled_quantity=qty, avg_fill_price=price,
            created_ts=ts, updated_ts=ts,
        )
        fill = Fill(order.client_order_id, "BTC-USD", OrderSide.BUY, qty, price, Decimal("0.05"),
                    Liquidity.TAKER, ts, f"t{i}", "paper")
        position = PositionSnapshot("BTC-USD", qty * (i + 1), price, price, Decimal(0),
                                    Decimal("0.05") * (i + 1), None)
        out.append(TradingBatch(account="paper", orders=[order], fills=[fill],
                                positions=[position], cash=Decimal(100000) - i, ts=ts))
    return out


def run_round(store, work) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in work:
        store.write(batch)
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    vendor = setup(args.database_url)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from trading.models import Account
    from trading.persistence import AccountFence, TradingStore, account_fence

    account = Account.objects.get(name="paper")
    store = TradingStore("paper")
    results: dict[str, list[tuple[float, float]]] = {"without fence": [], "with fence": []}
    statements: dict[str, float] = {}
    done = 0
    run_round(store, batches(50, 10**6))  # warm: connections, caches, the first inserts
    for r in range(args.rounds):
        for mode in (("with fence", "without fence") if r % 2 else ("without fence", "with fence")):
            registered = account_fence("paper")
            if registered is not None:
                registered.release()
            if mode == "with fence":
                AccountFence.take(account, "bench")  # as runtrader does: raise it, register it
            work = batches(args.batches, done)
            done += args.batches
            if mode not in statements:
                with CaptureQueriesContext(connection) as queries:
                    run_round(store, batches(10, 2 * 10**6 + done))
                statements[mode] = len(queries) / 10
            results[mode].append(run_round(store, work))
    checks = AccountFence.take(account, "bench")
    from django.db import transaction

    with transaction.atomic():  # the check alone, many times in one transaction
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(args.batches * 5):
            checks.check()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    checks.release()
    per = args.batches * 5
    print(f"{vendor}: the check alone (x{per} in one transaction): "
          f"cpu {cpu / per * 1e6:.1f} us, wall {wall / per * 1e6:.1f} us")
    print(f"{vendor}: {args.rounds} rounds of {args.batches} batches each, interleaved")
    base = None
    for mode in ("without fence", "with fence"):
        cpu = statistics.median(c for c, _ in results[mode]) / args.batches * 1e6
        wall = statistics.median(w for _, w in results[mode]) / args.batches * 1e6
        if base is None:
            base = (cpu, wall)
        print(f"  {mode:14}  cpu {cpu:8.1f} us/batch ({cpu / base[0]:.3f}x)  "
              f"wall {wall:8.1f} us/batch ({wall / base[1]:.3f}x)  "
              f"statements {statements[mode]:.1f}/batch")


if __name__ == "__main__":
    main()
