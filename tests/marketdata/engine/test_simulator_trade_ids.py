"""Simulated trade ids name their stream: a restarted simulation's trades are not duplicates.

Stored trades are unique per venue, symbol and trade id. The simulated market numbered its
trades 1, 2, 3... in every process, so after ``make run`` was stopped and started again the new
run's trades were dropped as duplicates of the first run's (none stored for as long as the first
had run; /health/ready said the feeds were stale).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from marketdata.engine.events import Trade
from marketdata.engine.quality import QualityValidator
from marketdata.engine.simulator import SimulatedMarket

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def trade_ids(market: SimulatedMarket, steps: int = 50) -> list[str]:
    return [e.trade_id for e in market.events(steps) if isinstance(e, Trade)]


def test_a_later_start_gives_other_ids_and_a_replay_the_same():
    first = trade_ids(SimulatedMarket(seed=42, start=START))
    restarted = trade_ids(SimulatedMarket(seed=42, start=START + timedelta(minutes=27)))
    replayed = trade_ids(SimulatedMarket(seed=42, start=START))
    other_seed = trade_ids(SimulatedMarket(seed=7, start=START))
    assert first and restarted
    assert not set(first) & set(restarted)
    assert not set(first) & set(other_seed)
    assert replayed == first  # the same stream again: every trade a duplicate, stored once


def test_the_validator_still_takes_them_as_one_numbered_stream():
    validator = QualityValidator()
    market = SimulatedMarket(symbols=["BTC-USD"], seed=3, start=START)
    trades = [e for e in market.events(200) if isinstance(e, Trade)]
    assert not any(validator.validate(t).quarantined for t in trades)
    again = validator.validate(trades[-1])  # a repeated id is still caught
    assert again.quarantined
    assert any("already seen" in str(finding) for finding in again.findings)
