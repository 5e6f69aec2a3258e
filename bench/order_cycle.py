"""Instructions per order, from intent to booked fill (callgrind), on the backtest and paper venues.

    .venv/bin/python bench/order_cycle.py [--orders 4000] [--venues backtest,paper]

What one order costs in the trading engine: ``OrderManager.submit`` of a market intent, the
venue's fill (next bar's open on the ``BacktestVenue``; at once against the synthetic book of the
``PaperVenue``), and its booking (order record, fill, position, cash, fees, P&L) with the
listeners a backtest has (its recorder, the strategy runner and its algo book). Orders alternate
buy and sell on one symbol (a round trip every two orders: entries and exits, as the user
strategies of ``bench/user_strategies.py`` trade) over a seeded random walk in cents.

Each venue runs twice under callgrind, in fresh processes: the same market data with and without
the orders; only the measured loop is counted (warmed on 400 events first). Instructions per
order = (with − without) / orders. The figure is steady on a loaded machine (no timing).
The final books (cash, realised P&L, fees, position, fills) are printed with a digest of every
fill, to check that a change keeps results exact.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

T0 = datetime(2024, 1, 1, tzinfo=UTC)
WARM = 400
VALGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null"]


def prices(n: int) -> list[float]:
    """Return ``n`` prices of a seeded random walk around 30,000, in cents."""
    import random

    rng = random.Random(7)
    price, out = 30_000.0, []
    for _ in range(n):
        price *= 1.0 + rng.gauss(0.0, 0.0008)
        out.append(round(price, 2))
    return out


def quantity(i: int) -> Decimal:
    """Return the i-th entry's size: about 2 % of 100,000 USD at 30,000, in satoshis."""
    return Decimal(6_500_000 + (i * 7919) % 100_000).scaleb(-8)


def build(venue_name: str):
    """Return (oms, portfolio, recorder) wired as a backtest wires them."""
    from backtesting.engine.fills import BacktestVenue, FillConfig
    from backtesting.engine.runner import _Recorder
    from trading.engine.oms import OrderManager
    from trading.engine.orders import SequentialIds
    from trading.engine.portfolio import Portfolio
    from trading.engine.runner import StrategyRunner
    from trading.engine.venue import PaperVenue, VenueConfig

    fee = Decimal(10)
    if venue_name == "backtest":
        venue = BacktestVenue(FillConfig(taker_fee_bps=fee, model="next_open"))
    else:
        venue = PaperVenue(VenueConfig(taker_fee_bps=fee))
    portfolio = Portfolio("bt", Decimal(100_000), ts=T0)
    oms = OrderManager(venue, portfolios=[portfolio], id_factory=SequentialIds("b"))
    recorder = _Recorder()
    oms.add_listener(recorder)
    StrategyRunner(oms, id_factory=SequentialIds("o"))  # listens, as in a backtest (+ AlgoBook)
    return oms, portfolio, recorder


def events(venue_name: str, n: int) -> list:
    """Return the market data of ``n`` steps: one-minute bars, or trade prints."""
    from marketdata.engine.events import Bar, Trade

    out, minute = [], timedelta(minutes=1)
    for i, close in enumerate(prices(n + 1)):
        ts = T0 + i * minute
        if venue_name == "backtest":
            out.append(Bar("BTC-USD", "1m", ts, close, close + 1.0, close - 1.0, close, 5.0))
        else:
            out.append(Trade("BTC-USD", ts, close, 5.0, "paper"))
    return out


def intents(n: int) -> list:
    """Return ``n`` market intents alternating buy (an entry) and sell (its exit)."""
    from trading.engine.orders import OrderIntent, OrderSide

    out = []
    for i in range(n):
        qty = quantity(i // 2)
        side = OrderSide.BUY if i % 2 == 0 else OrderSide.SELL
        out.append(
            OrderIntent(account="bt", symbol="BTC-USD", side=side, quantity=qty, strategy="bench")
        )
    return out


def side(venue_name: str, n: int, with_orders: bool) -> dict:
    """Run the loop (this process is fresh); count its instructions when under callgrind."""
    oms, portfolio, recorder = build(venue_name)
    data = events(venue_name, WARM + n)
    orders = intents(WARM + n)
    minute = timedelta(minutes=1)
    feed = oms.on_bar if venue_name == "backtest" else oms.on_trade
    submit = oms.submit

    def loop(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            event = data[i]
            feed(event)
            if with_orders:
                submit(orders[i], event.ts + minute)

    loop(0, WARM)
    counted = bool(os.environ.get("BENCH_CALLGRIND"))
    if counted:
        _callgrind("on")
    loop(WARM, WARM + n)
    if counted:
        _callgrind("off")
    feed(data[WARM + n])  # the last order's fill (next open)
    digest = hashlib.sha256()
    for f in recorder.fills:
        digest.update(f"{f.order_id}|{f.side}|{f.quantity}|{f.price}|{f.fee}|{f.ts}".encode())
    return {
        "orders": len(recorder.orders),
        "fills": len(recorder.fills),
        "cash": str(portfolio.cash),
        "realized": str(portfolio.realized_pnl),
        "fees": str(portfolio.fees),
        "position": str(portfolio.quantity("BTC-USD")),
        "digest": digest.hexdigest()[:16],
    }


def _callgrind(state: str) -> None:
    subprocess.run(
        ["callgrind_control", f"--instr={state}", str(os.getpid())],
        capture_output=True,
        check=False,
    )


def counted(venue_name: str, n: int, with_orders: bool) -> tuple[int, dict]:
    """Return the instructions of one side's measured loop and what it reported."""
    command = [sys.executable, __file__, "--side", f"{venue_name},{n},{int(with_orders)}"]
    env = {**os.environ, "BENCH_CALLGRIND": "1"}
    proc = subprocess.run(VALGRIND + command, capture_output=True, text=True, cwd=ROOT, env=env)
    found = re.findall(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"callgrind run failed:\n{proc.stderr[-3000:]}")
    return int(found[-1].replace(",", "")), json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=4000)
    parser.add_argument("--venues", default="backtest,paper")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # internal: venue,orders,with
    args = parser.parse_args()
    if args.side:
        venue_name, n, with_orders = args.side.split(",")
        print(json.dumps(side(venue_name, int(n), with_orders == "1")))
        return 0
    for venue_name in args.venues.split(","):
        base, _ = counted(venue_name, args.orders, False)
        total, books = counted(venue_name, args.orders, True)
        per = (total - base) / args.orders
        print(
            f"{venue_name:8s} {per:10,.0f} instructions per order "
            f"({args.orders:,} orders, {total:,} with, {base:,} without)"
        )
        print(f"         books: {json.dumps(books)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
