"""Pre-trade risk check latency: the full check set with 50 open positions and 20 limits.

The reference in the same run is the trivial ``HaltAwareHook`` (trading-mode gate only), so the
ratio shows what the real checks cost on top of the hook call itself.

    .venv/bin/python bench/risk_pretrade.py [--orders 50000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from risk.engine.checks import RiskChecker  # noqa: E402
from risk.engine.limits import LimitSpec  # noqa: E402
from trading.engine.hooks import (  # noqa: E402
    AccountView,
    HaltAwareHook,
    OrderProposal,
    PositionView,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def twenty_limits() -> list[LimitSpec]:
    """Every limit kind, plus per-symbol and per-strategy variants: 20 limits."""
    specs = [
        LimitSpec("max_order_notional", "250000"),
        LimitSpec("max_position_pct", "0.5", action="reduce"),
        LimitSpec("max_gross_exposure_pct", "20"),
        LimitSpec("max_net_exposure_pct", "20"),
        LimitSpec("max_open_orders", "500"),
        LimitSpec("max_order_rate", "1000000", params={"window_seconds": 60}),
        LimitSpec("price_band_bps", "500"),
        LimitSpec("max_daily_loss_pct", "0.5"),
        LimitSpec("max_drawdown_pct", "0.5", action="halt"),
        LimitSpec("max_correlation", "0.95", params={"max_combined_pct": 50}),
    ]
    specs += [LimitSpec("max_order_notional", "300000", scope="symbol", scope_value=f"S{i}-USD")
              for i in range(6)]
    specs += [LimitSpec("max_position_pct", "0.6", action="reduce", scope="strategy",
                        scope_value=f"strat{i}") for i in range(4)]
    assert len(specs) == 20
    return specs


def account(rng: random.Random) -> AccountView:
    """An account with 50 open positions."""
    positions = {}
    for i in range(50):
        symbol = f"S{i}-USD"
        qty = Decimal(rng.choice([-1, 1]) * rng.randint(1, 50))
        price = Decimal(100 + i)
        positions[symbol] = PositionView(symbol, qty, price, price)
    return AccountView("bench", Decimal("10000000"), Decimal("10100000"), Decimal("10200000"),
                       Decimal("10150000"), positions, open_orders=20)


def proposals(n: int, rng: random.Random) -> list[OrderProposal]:
    """Random limit and market orders over the 50 symbols."""
    out = []
    for i in range(n):
        k = rng.randrange(50)
        price = Decimal(100 + k)
        out.append(OrderProposal(
            "bench", f"S{k}-USD", rng.choice(["buy", "sell"]), Decimal(rng.randint(1, 20)),
            rng.choice(["market", "limit"]), price, limit_price=price,
            strategy=f"strat{i % 5}", ts=T0 + timedelta(milliseconds=i)))
    return out


def measure(hook, view: AccountView, orders: list[OrderProposal]) -> tuple[float, float, float]:
    """Return (p50 µs, p99 µs, checks/s) of ``hook.check`` over ``orders``."""
    clock = time.perf_counter_ns
    samples = []
    started = clock()
    for order in orders:
        t = clock()
        hook.check(order, view)
        samples.append(clock() - t)
    elapsed = (clock() - started) / 1e9
    samples.sort()
    return (samples[len(samples) // 2] / 1e3, samples[int(len(samples) * 0.99)] / 1e3,
            len(orders) / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=50_000)
    args = parser.parse_args()
    rng = random.Random(7)
    view = account(rng)
    orders = proposals(args.orders, rng)
    checker = RiskChecker(twenty_limits())
    for _ in range(200):  # returns for the correlation limit, fed as once per bar
        checker.update_returns_batch({f"S{k}-USD": rng.gauss(0, 0.01) for k in range(50)})
    checker.check(orders[0], view)  # warm-up
    measure(checker, view, orders[:2000])
    p50, p99, rate = measure(checker, view, orders)
    r50, r99, rrate = measure(HaltAwareHook(), view, orders)
    print(f"pre-trade checks: {args.orders} orders, 50 positions, 20 limits")
    print(f"{'hook':<28}{'p50 µs':>10}{'p99 µs':>10}{'checks/s':>14}")
    print(f"{'RiskChecker (20 limits)':<28}{p50:>10.1f}{p99:>10.1f}{rate:>14,.0f}")
    print(f"{'HaltAwareHook (reference)':<28}{r50:>10.1f}{r99:>10.1f}{rrate:>14,.0f}")
    print(f"ratio p99 RiskChecker / reference: {p99 / r99:.1f}x")
    print(f"  {'PASS' if p99 < 200 else 'FAIL'}  p99 < 200 µs (target)")


if __name__ == "__main__":
    main()
