"""Quantum vs classical portfolio selection on the simulated market (not run in CI).

    .venv/bin/python bench/quantum_optimisation.py [--sizes 4,6,8] [--instances 10] [--quick]

Part 1: for each n, ``--instances`` seeded k-of-n portfolios (k = n // 2) estimated from the
simulated market's hourly bars; every method's mean and worst approximation ratio
((f - worst feasible) / (optimum - worst feasible)), feasibility and time. A method whose
(n, method) cell exceeds ``--cap-seconds`` stops there and is not tried at larger n.
Part 2: a walk-forward backtest of the ``rebalance`` strategy re-optimising on past closes only,
with QAOA-, exact-, mean-variance-chosen and equal-weight portfolios, out of sample.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marketdata.engine.constants import SymbolSpec  # noqa: E402
from marketdata.engine.simulator import SimulatedMarket  # noqa: E402
from models_ml.engine.quantum import (  # noqa: E402
    FeasibleSet,
    SolverOptions,
    portfolio_problem,
    score,
    solve,
)
from models_ml.engine.quantum.estimation import return_moments  # noqa: E402
from models_ml.engine.quantum.qubo import to_qubo  # noqa: E402

START = datetime(2024, 1, 1, tzinfo=UTC)
METHODS = {
    "qaoa p=1": ("qaoa", {"reps": 1}),
    "qaoa p=2": ("qaoa", {"reps": 2}),
    "qaoa p=3": ("qaoa", {"reps": 3}),
    "vqe": ("vqe", {"reps": 1}),
    "anneal": ("anneal", {}),
    "greedy": ("greedy", {}),
    "meanvar": ("meanvar", {}),
    "exact": ("exact", {}),
}


def market_instance(n: int, seed: int, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (mu, Sigma) from ``days`` of hourly bars of an n-symbol simulated market."""
    rng = np.random.default_rng([n, seed])
    specs = [
        SymbolSpec(
            f"S{i:02d}-USD",
            f"S{i:02d}",
            "USD",
            float(rng.uniform(1, 100)),
            1e5,
            0.0001,
            0.001,
            2.0,
            float(rng.uniform(0.4, 1.2)),
        )
        for i in range(n)
    ]
    # Crypto majors move together: one market factor (loadings b_i) gives corr b_i * b_j,
    # positive definite by construction.
    loadings = rng.uniform(0.5, 0.9, n)
    corr = {
        frozenset({a.symbol, b.symbol}): float(loadings[i] * loadings[j])
        for i, a in enumerate(specs)
        for j, b in enumerate(specs)
        if i < j
    }
    market = SimulatedMarket(specs, seed=int(rng.integers(1 << 30)), correlations=corr)
    bars = market.history_bars(None, "1h", START, START + timedelta(days=days))
    closes = bars.pivot(index="ts", columns="symbol", values="close").to_numpy()
    return return_moments(closes)


@dataclass
class Cell:
    """Results of one method at one n."""

    ratios: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    infeasible: int = 0
    p_opt: list[float] = field(default_factory=list)
    qubits: int | None = None
    depth: int | None = None
    stopped: str = ""


def run_cell(name: str, problems: list, sets: list, args: argparse.Namespace, bar) -> Cell:
    """Run one method on every instance of one size, within the time cap."""
    method, extra = METHODS[name]
    cell, spent = Cell(), 0.0
    for i, (problem, fs) in enumerate(zip(problems, sets, strict=True)):
        if spent > args.cap_seconds:
            cell.stopped = f"cap after {i} instances"
            bar.update(len(problems) - i)
            break
        options = SolverOptions(seed=i, shots=args.shots, maxiter=args.maxiter, **extra)
        started = time.perf_counter()
        solution = solve(problem, method, options)
        spent += time.perf_counter() - started
        s = score(problem, solution.x, fs, solution.samples)
        cell.seconds.append(solution.seconds)
        cell.qubits, cell.depth = solution.qubits, solution.depth
        if s.feasible:
            cell.ratios.append(s.approximation_ratio)
        else:
            cell.infeasible += 1
        if s.optimal_probability is not None:
            cell.p_opt.append(s.optimal_probability)
        bar.update(1)
    return cell


def benchmark(args: argparse.Namespace) -> None:
    """Print the table of part 1."""
    from tqdm import tqdm

    stopped: dict[str, str] = {}
    header = (
        f"{'n':>3} {'method':<9} {'mean ratio':>10} {'worst':>7} {'infeas':>6} "
        f"{'P(opt)':>7} {'mean s':>8} {'max s':>8} {'qubits':>6} {'depth':>6}  note"
    )
    print(header)
    for n in args.sizes:
        k = n // 2
        problems = []
        for seed in range(args.instances):
            mu, sigma = market_instance(n, seed, args.days)
            problems.append(portfolio_problem(mu, sigma, budget=k, risk_aversion=args.risk))
        sets = [FeasibleSet.enumerate(p) for p in problems]
        penalty = to_qubo(problems[0]).penalty
        print(f"--- n={n}, k={k}: {len(sets[0].values)} feasible of {2**n}; penalty {penalty:.3g}")
        for name in args.methods:
            if name in stopped:
                print(f"{n:>3} {name:<9} {'-':>10}  stopped: {stopped[name]}")
                continue
            bar = tqdm(total=args.instances, desc=f"n={n} {name}", file=sys.stderr, leave=False)
            cell = run_cell(name, problems, sets, args, bar)
            bar.close()
            print(_row(n, name, cell), flush=True)
            if cell.stopped or (cell.seconds and np.mean(cell.seconds) > args.cap_seconds / 4):
                stopped[name] = f"n={n} took {np.mean(cell.seconds):.1f} s per instance"


def _row(n: int, name: str, cell: Cell) -> str:
    """Format one table row."""
    ratios = cell.ratios or [float("nan")]
    p_opt = f"{np.mean(cell.p_opt):.4f}" if cell.p_opt else "-"
    return (
        f"{n:>3} {name:<9} {np.mean(ratios):>10.4f} {np.min(ratios):>7.4f} {cell.infeasible:>6} "
        f"{p_opt:>7} {np.mean(cell.seconds):>8.3f} {np.max(cell.seconds):>8.3f} "
        f"{cell.qubits or '-':>6} {cell.depth or '-':>6}  {cell.stopped}"
    )


def walk_forward(args: argparse.Namespace) -> None:
    """Print part 2: the rebalance strategy re-optimising on past closes with each method."""
    from backtesting.engine.runner import BacktestConfig, run_backtest
    from trading.engine.strategies import create_strategy

    symbols = ["BTC-USD", "ETH-USD", "SOL-USD", "MATIC-USD", "AVAX-USD"]
    market = SimulatedMarket(symbols, seed=args.wf_seed)
    bars = market.history_bars(symbols, "1h", START, START + timedelta(days=args.wf_days))
    config = BacktestConfig(taker_fee_bps=Decimal(10))
    print(
        f"\nwalk-forward: {len(symbols)} symbols, {args.wf_days} days of 1h bars, k=2, "
        f"re-optimised every {args.wf_every} bars on the last {args.wf_lookback} closes"
    )
    print(f"{'method':<8} {'return %':>9} {'sharpe':>7} {'max dd %':>9} {'trades':>7} {'s':>7}")
    for method in ("qaoa", "exact", "greedy", "meanvar", "equal"):
        strategy = create_strategy(
            "rebalance",
            symbols=",".join(symbols),
            k=2,
            method=method,
            every=args.wf_every,
            reoptimise_every=args.wf_every,
            lookback=args.wf_lookback,
            risk_aversion=args.risk,
            band=0.02,
        )
        started = time.perf_counter()
        result = run_backtest(strategy, bars, config)
        m = result.metrics
        print(
            f"{method:<8} {100 * m.get('total_return', float('nan')):>9.2f} "
            f"{m.get('sharpe', float('nan')):>7.2f} "
            f"{100 * m.get('max_drawdown', float('nan')):>9.2f} "
            f"{len(result.fills):>7} {time.perf_counter() - started:>7.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4,6,8,10,12,14")
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--cap-seconds", type=float, default=300.0, help="per (n, method) cell")
    parser.add_argument("--shots", type=int, default=1024)
    parser.add_argument("--maxiter", type=int, default=100)
    parser.add_argument("--days", type=int, default=60, help="hourly bars per instance")
    parser.add_argument("--risk", type=float, default=5.0, help="risk aversion")
    parser.add_argument("--skip-walkforward", action="store_true")
    parser.add_argument("--only-walkforward", action="store_true")
    parser.add_argument("--wf-days", type=int, default=90)
    parser.add_argument("--wf-every", type=int, default=24)
    parser.add_argument("--wf-lookback", type=int, default=168)
    parser.add_argument("--wf-seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="n=4,6, 3 instances, short walk")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.instances, args.wf_days = "4,6", 3, 20
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.methods = [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}")
    logging.getLogger("qiskit").setLevel(logging.WARNING)
    if not args.only_walkforward:
        benchmark(args)
    if not args.skip_walkforward:
        walk_forward(args)


if __name__ == "__main__":
    main()
