"""What a performance page load costs for its trade metrics: read the stored figures (now) beside
extending the tally in the load (before: a new web process read and merged every stored trip row).

    .venv/bin/python bench/trade_tally_page.py                  # 200,000 fills, 256 trip rows
    .venv/bin/python bench/trade_tally_page.py --fills 1000000

A fresh SQLite database (the embedded default) gets one account with ``--fills`` random fills on
three symbols (flips, partial closes), tallied by the background refresh in ``--rows`` steps so
the checkpoint holds that many stored trip rows (``COMPACT_AFTER`` is 256: at most that many
before the task compacts them). Then, CPU seconds (``time.process_time``, best of ``--repeat``):
- ``page now``: ``trade_metrics`` as a page load calls it (the checkpoint row and one probe);
- ``page before, new process``: ``trade_tally_extend`` with this process's tally forgotten, what
  each web process's first load (and every load after a compaction or reset) did: read every
  stored trip row and merge them (the reference, measured in the same run);
- ``page before, warm process``: the same with the tally kept in memory and no new fill.
Both paths give the same figures (checked bit for bit).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import setup_django  # noqa: E402


def seed(fills: int, seed: int = 7):
    """Store ``fills`` random fills of one account; return the account."""
    from marketdata.models import Symbol
    from trading.models import Account, Fill, Order

    rng = random.Random(seed)
    account = Account.objects.create(
        name="bench", cash=Decimal(100_000), initial_capital=Decimal(100_000)
    )
    symbols = [Symbol.objects.get_or_create(name=n, defaults={"base": n[:3], "quote": "USD"})[0]
               for n in ("BTC-USD", "ETH-USD", "SOL-USD")]  # fmt: skip
    order = Order.objects.create(
        account=account, symbol=symbols[0], side="buy", quantity=Decimal(1), status="filled",
        created_at=datetime.now(UTC), updated_at=datetime.now(UTC),
    )
    held = dict.fromkeys(s.pk for s in symbols)
    t0, batch = datetime(2026, 1, 1, tzinfo=UTC), []
    for i in range(fills):
        symbol = rng.choice(symbols)
        position = held[symbol.pk] or Decimal(0)
        if position and rng.random() < 0.25:
            side, qty = ("sell" if position > 0 else "buy"), abs(position)
        else:
            side, qty = rng.choice(["buy", "sell"]), Decimal(rng.choice(["0.5", "1", "2"]))
        held[symbol.pk] = position + (qty if side == "buy" else -qty)
        batch.append(Fill(order=order, account=account, symbol=symbol, side=side, quantity=qty,
                          price=Decimal(100 + rng.randint(-20, 20)), fee=Decimal("0.01"),
                          venue_trade_id=f"b{i}", ts=t0 + timedelta(seconds=i)))  # fmt: skip
        if len(batch) == 20_000:
            Fill.objects.bulk_create(batch)
            batch = []
    Fill.objects.bulk_create(batch)
    return account


def best(fn, repeat: int) -> tuple[float, object]:
    """Return the least CPU seconds of ``repeat`` calls of ``fn`` and its last answer."""
    times, answer = [], None
    for _ in range(repeat):
        started = time.process_time()
        answer = fn()
        times.append(time.process_time() - started)
    return min(times), answer


def same(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=256, help="stored trip rows (<= 256)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    setup_django()
    from trading import trade_tally

    print(f"load average {os.getloadavg()[0]:.2f}; seeding {args.fills:,} fills ...", flush=True)
    account = seed(args.fills)
    trade_tally.CHUNK = max(1, args.fills // args.rows)  # one stored row per step
    trade_tally.COMPACT_AFTER = 10**9
    started = time.process_time()
    trade_tally.trade_tally_refresh(account.pk)  # the background task
    task = time.process_time() - started
    from trading.models import TradeTallyTrips

    rows = TradeTallyTrips.objects.filter(tally__account=account).count()
    trips = trade_tally._TALLIES[account.pk].trips.size
    print(f"{args.fills:,} fills, {trips:,} closed trips in {rows} stored rows; "
          f"the refresh task took {task:.2f} s CPU")  # fmt: skip

    def before_new_process():
        trade_tally._TALLIES.clear()
        return trade_tally.trade_tally_extend(account=account)[0]

    cold, old = best(before_new_process, args.repeat)
    warm, _ = best(lambda: trade_tally.trade_tally_extend(account=account)[0], args.repeat)
    now, shown = best(lambda: trade_tally.trade_metrics(account=account, refresh=False),
                      args.repeat)  # fmt: skip
    assert same(shown.figures, old), "the stored figures differ from the tally's"
    print(f"page now (stored figures)      {now * 1000:9.2f} ms CPU")
    print(f"page before, new process       {cold * 1000:9.2f} ms CPU  ({cold / now:,.0f}x now)")
    print(f"page before, warm process      {warm * 1000:9.2f} ms CPU  ({warm / now:,.1f}x now)")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
