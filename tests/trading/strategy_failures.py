"""Set-ups shared by the tests of strategy code that raises or calls ``sys.exit()``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from marketdata.engine.events import Bar
from risk.models import RiskEvent
from tests.backtesting.engine.helpers import D
from tests.runtime_harness import db, running, until
from trading.engine.hooks import TradingMode
from trading.engine.oms import OrderManager
from trading.engine.portfolio import Portfolio
from trading.engine.runner import StrategyRunner
from trading.engine.strategies import create_strategy
from trading.engine.venue import PaperVenue


def strategy_file(tmp_path: Path, text: str, cls: str) -> tuple[str, Path]:
    """Write a strategy's source to a file; return its ``path:Class`` spec and resolved path."""
    path = tmp_path / f"{cls.lower()}.py"
    path.write_text(textwrap.dedent(text))
    return f"{path}:{cls}", path.resolve()


def run_live_pair(spec: str, bars: pd.DataFrame) -> tuple[OrderManager, list[tuple]]:
    """Run ``spec`` live on accounts a (fails after 3 bars) and b (never); return OMS, failures."""
    oms = OrderManager(PaperVenue())
    start = bars["ts"].iloc[0].to_pydatetime()
    for account in ("a", "b"):
        oms.add_account(Portfolio(account, D(100_000), ts=start))
    runner = StrategyRunner(oms)
    failures: list[tuple] = []
    runner.on_strategy_error = lambda account, sid, error: failures.append((account, sid, error))
    runner.add(create_strategy(spec, after=3), "a")
    runner.add(create_strategy(spec, after=10**9), "b")
    runner.start(start)
    for row in bars.itertuples():
        runner.on_bar(Bar(row.symbol, "1m", row.ts.to_pydatetime(), row.open, row.high, row.low,
                          row.close, row.volume))  # fmt: skip
    return oms, failures


async def runtrader_until_strategy_fails(account, spec: str, **params) -> RiskEvent:
    """Run runtrader until the account reduces, the engine carries on and the event is stored."""
    async with running(account, strategy=spec, params=params) as runtime:
        await until(lambda: runtime.oms.mode(account.name) is TradingMode.REDUCING, "reducing")
        events = runtime.summary.events
        await until(lambda: runtime.summary.events > events + 5, "the engine to carry on")
        await until(db(RiskEvent.objects.filter(account=account, kind="strategy").exists),
                    "the risk event stored")  # fmt: skip
    return await db(RiskEvent.objects.get)(account=account, kind="strategy")
