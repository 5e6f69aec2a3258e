"""Users' strategies next to backtesting.py: signal style, event style, event style with history.

    .venv/bin/python bench/user_strategies.py [--bars 1000000] [--markets walk,sim]

On ``--bars`` one-minute bars of a plain random walk and of the simulated market, the long-only
SMA(10/30) state strategy written three ways as a user would (files in a temporary
``STRATEGY_PATHS`` folder, loaded by the same loader as ``--strategy``):

- ``signal``: a ``SignalStrategy`` (pandas rolling means; the decision-table path);
- ``event``: an ``on_bar`` strategy keeping running sums;
- ``history``: an ``on_bar`` strategy reading ``ctx.history(symbol, 30)`` each bar.

Each side runs in a fresh process (ours: this script with ``--side``; backtesting.py: the
peer script in ``.venv-bench``), all-in at 0.1 % commission with next-open fills as in
``bench/backtest_peers.py`` (the same sizing and fee rule, so the same trades); it prints
bars/s of both, their ratio, the trade counts of both and the targets (5x, 2x, 1x).
Known limit: the all-in sizing of backtesting_peers.py is kept, so the accounts end near dust
after ~10,000 round trips; the trade counts, not the final equities, are compared.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAST, SLOW = 10, 30
TARGETS = {"signal": 5.0, "event": 2.0, "history": 1.0}
FRACTION = "0.99890109890"  # 0.9999 / 1.001: backtesting.py's all-in size (backtest_peers.py)

SOURCES = {
    "signal": '''
from trading.engine.signal_strategy import SignalStrategy


class UserSignal(SignalStrategy):
    default_params = {"fast": 10, "slow": 30}

    def indicators(self, df):
        df["fast"] = df["close"].rolling(self.params["fast"]).mean()
        df["slow"] = df["close"].rolling(self.params["slow"]).mean()
        return df

    def entries(self, df):
        df["enter_long"] = df["fast"] > df["slow"]
        return df

    def exits(self, df):
        df["exit_long"] = df["fast"] < df["slow"]
        return df
''',
    "event": '''
from collections import deque
from decimal import Decimal

from trading.engine.strategy import Strategy


class UserEvent(Strategy):
    default_params = {"fast": 10, "slow": 30, "fraction": 0.1, "lot": "0.00000001"}

    def on_start(self, ctx):
        self.closes = deque(maxlen=self.params["slow"])
        self.sf = self.ss = 0.0
        self.lot = Decimal(self.params["lot"])

    def on_bar(self, bar, ctx):
        fast, slow, closes, close = self.params["fast"], self.params["slow"], self.closes, bar.close
        if len(closes) == slow:
            self.ss -= closes[0]
        if len(closes) >= fast:
            self.sf -= closes[-fast]
        closes.append(close)
        self.sf += close
        self.ss += close
        if len(closes) < slow:
            return
        f, s = self.sf / fast, self.ss / slow
        held = ctx.position(bar.symbol)
        if f > s and not held:
            ctx.buy(bar.symbol, ctx.size_for(bar.symbol, self.params["fraction"], self.lot, close))
        elif f < s and held:
            ctx.sell(bar.symbol, held)
''',
    "history": '''
from decimal import Decimal

from trading.engine.strategy import Strategy


class UserHistory(Strategy):
    default_params = {"fast": 10, "slow": 30, "fraction": 0.1, "lot": "0.00000001"}

    def on_start(self, ctx):
        self.lot = Decimal(self.params["lot"])

    def on_bar(self, bar, ctx):
        fast, slow = self.params["fast"], self.params["slow"]
        closes = ctx.history(bar.symbol, slow)
        if len(closes) < slow:
            return
        f, s = sum(closes[-fast:]) / fast, sum(closes) / slow
        held = ctx.position(bar.symbol)
        if f > s and not held:
            ctx.buy(bar.symbol, ctx.size_for(bar.symbol, self.params["fraction"], self.lot,
                                             bar.close))
        elif f < s and held:
            ctx.sell(bar.symbol, held)
''',
}
CLASSES = {"signal": "UserSignal", "event": "UserEvent", "history": "UserHistory"}


def make_frame(market: str, n: int):
    """Return ``n`` one-minute bars: a seeded random walk, or the simulated market (seed 42)."""
    import numpy as np
    import pandas as pd

    start = datetime(2024, 1, 1, tzinfo=UTC)
    if market == "sim":
        from marketdata.engine.simulator import SimulatedMarket

        return SimulatedMarket(["BTC-USD"], seed=42).history_bars(
            "BTC-USD", "1m", start, start + timedelta(minutes=n)
        )
    rng = np.random.default_rng(7)
    close = np.round(30_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, n))), 2)
    open_ = np.round(np.concatenate([[close[0]], close[:-1]]) * (1 + rng.normal(0, 1e-4, n)), 2)
    high = np.maximum(open_, close) + 1.0
    low = np.minimum(open_, close) - 1.0
    ts = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    return pd.DataFrame({"ts": ts, "open": open_, "high": high, "low": low, "close": close,
                         "volume": np.full(n, 5.0)})


def ours(kind: str, npz: str, folder: str) -> dict:
    """Run one user strategy on the bars (this process is fresh); return bars/s and trades."""
    from decimal import Decimal

    import numpy as np
    import pandas as pd

    from backtesting.engine.runner import BacktestConfig, prepare_bars, run_backtest
    from trading.engine import user_strategies
    from trading.engine.strategies import create_strategy

    raw = np.load(npz)
    frame = pd.DataFrame({c: raw[c] for c in ("open", "high", "low", "close", "volume")})
    frame.insert(0, "ts", pd.to_datetime(raw["ts"], utc=True))
    frame.insert(1, "symbol", "BTC-USD")
    user_strategies.set_strategy_paths([folder])
    config = BacktestConfig(initial_cash=Decimal(100_000), taker_fee_bps=Decimal(10),
                            fill_model="next_open")
    strategy = create_strategy(CLASSES[kind], fraction=Decimal(FRACTION))
    began = time.perf_counter()
    result = run_backtest(strategy, prepare_bars(frame), config)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "trades": len(result.closed_trades),
            "final_equity": float(result.final_equity)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--markets", default="walk,sim")
    parser.add_argument("--kinds", default="signal,event,history")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # internal: kind,npz,folder
    args = parser.parse_args()
    if args.side:
        kind, npz, folder = args.side.split(",")
        print(json.dumps(ours(kind, npz, folder)))
        return 0
    import numpy as np

    from bench.backtest_peers import peer_python, run_peer

    python = peer_python(ROOT / ".venv-bench", setup=False)
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in SOURCES.items():
            (Path(tmp) / f"{name}.py").write_text(text)
        for market in args.markets.split(","):
            frame = make_frame(market, args.bars)
            npz = Path(tmp) / f"{market}.npz"
            ts = frame["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
            np.savez(npz, ts=ts, **{c: frame[c].to_numpy()
                                    for c in ("open", "high", "low", "close", "volume")})
            peer = run_peer(python, "backtesting", str(npz), str(FAST), str(SLOW))
            n = len(frame)
            for kind in args.kinds.split(","):
                proc = subprocess.run(
                    [sys.executable, __file__, "--side", f"{kind},{npz},{tmp}"],
                    capture_output=True, text=True, cwd=ROOT,
                )
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr[-3000:])
                mine = json.loads(proc.stdout.strip().splitlines()[-1])
                ratio = peer["seconds"] / mine["seconds"]
                same = mine["trades"] == peer["trades"]
                fast_enough = ratio >= TARGETS[kind]
                failed |= not (same and fast_enough)
                verdict = ("ok" if fast_enough else "below target") + (
                    "" if same else ", DIFFERENT TRADES")
                print(f"{market:<5} {kind:<8} ours {n / mine['seconds']:>11,.0f} bars/s  "
                      f"backtesting.py {n / peer['seconds']:>9,.0f} bars/s  "
                      f"ratio {ratio:5.2f}x (target {TARGETS[kind]:.0f}x)  "
                      f"trades {mine['trades']} vs {peer['trades']}  "
                      f"{verdict}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
