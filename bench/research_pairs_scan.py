"""Time a full pair scan (Engle-Granger on every pair) and check what it finds (not run in CI).

    .venv/bin/python bench/research_pairs_scan.py [--symbols 50] [--bars 100000]

The universe is ``--symbols`` geometric random walks of ``--bars`` bars, except that the first
``--planted`` symbols are each cointegrated with a random walk partner by construction (log a =
0.5 + 1.2 log b + AR(1) spread, phi 0.99). Reported: wall time of the scan, pairs per second, and
the baseline beside it: planted pairs found (BH-corrected p <= alpha) against false discoveries
among the independent pairs, with alpha x pairs, what an uncorrected test would let through.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from research.engine.statarb import scan_pairs  # noqa: E402


def universe(symbols: int, bars: int, planted: int, seed: int) -> tuple[pd.DataFrame, set]:
    """Return prices and the set of planted (a, b) pairs."""
    rng = np.random.default_rng(seed)
    logs = np.cumsum(rng.normal(0, 0.001, (bars, symbols)), axis=0) + np.log(100)
    pairs = set()
    for i in range(planted):
        partner = planted + i
        spread = np.zeros(bars)
        shocks = rng.normal(0, 0.001, bars)
        for t in range(1, bars):
            spread[t] = 0.99 * spread[t - 1] + shocks[t]
        logs[:, i] = 0.5 + 1.2 * logs[:, partner] + spread
        pairs.add((f"S{i:02d}", f"S{partner:02d}"))
    return pd.DataFrame(np.exp(logs), columns=[f"S{i:02d}" for i in range(symbols)]), pairs


def main() -> None:
    """Run the scan and print one results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--planted", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    prices, planted = universe(args.symbols, args.bars, args.planted, args.seed)
    started = time.perf_counter()
    results = scan_pairs(prices, alpha=args.alpha)
    elapsed = time.perf_counter() - started
    found = {(r.y, r.x) for r in results if r.p_adjusted <= args.alpha}
    print(
        "| symbols | bars | pairs | scan s | pairs/s | planted found | "
        "false discoveries (BH) | uncorrected expected |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.symbols} | {args.bars} | {len(results)} | {elapsed:.1f} | "
        f"{len(results) / elapsed:.1f} | {len(found & planted)}/{len(planted)} | "
        f"{len(found - planted)} | {args.alpha * (len(results) - len(planted)):.1f} |"
    )


if __name__ == "__main__":
    main()
