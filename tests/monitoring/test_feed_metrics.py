"""Feed series agree with the pipeline's own counts, event by event (runtrader) and in batches
(ingest): received per symbol, flagged, quarantined (malformed frames included)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from marketdata.adapters.base import Malformed
from marketdata.engine.events import Trade
from marketdata.pipeline import MarketDataPipeline
from monitoring.metrics import FeedMetrics
from tests.prometheus_samples import by_symbol

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _events() -> list:
    rng = random.Random(3)
    price, out = 100.0, []
    for i in range(3000):
        price *= 1 + rng.gauss(0, 0.001)
        symbol = "AAA-USD" if i % 3 else "BBB-USD"
        traded = price * (8 if i % 499 == 0 else 1)  # a few wild prints for the validator
        size = -1.0 if i % 701 == 0 else 0.5  # a few impossible sizes
        out.append(Trade(symbol, T0 + timedelta(milliseconds=50 * i), traded, size,
                         trade_id=str(i)))
        if i % 997 == 0:
            out.append(Malformed(raw="{not json", reason="bad frame", source="test"))
    return out


def _total(name: str, source: str) -> float:
    return sum(
        s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == name and s.labels.get("source") == source
    )


def _check(source: str, counts) -> None:
    assert _total("rrr_feed_messages_received_total", source) == counts.received
    assert _total("rrr_feed_messages_flagged_total", source) == counts.flagged
    quarantined = counts.quarantined + counts.malformed
    assert _total("rrr_feed_messages_quarantined_total", source) == quarantined
    assert counts.flagged + counts.quarantined + counts.malformed > 0  # the test bites


def test_event_by_event_counts_match_the_pipeline():
    pipeline = MarketDataPipeline(source="mt-event", symbols=["AAA-USD", "BBB-USD"])
    metrics = FeedMetrics("mt-event")
    for event in _events():
        outputs = pipeline.process(event)
        metrics.received(getattr(event, "symbol", ""), getattr(event, "ts", None), outputs)
    _check("mt-event", pipeline.counts)
    per_symbol = REGISTRY.get_sample_value(
        "rrr_feed_messages_received_total", {"source": "mt-event", "symbol": "BBB-USD"}
    )
    assert per_symbol == 1000


def test_batch_counts_match_the_pipeline():
    pipeline = MarketDataPipeline(source="mt-batch", symbols=["AAA-USD", "BBB-USD"])
    metrics = FeedMetrics("mt-batch")
    events = _events()
    for start in range(0, len(events), 400):
        batch = events[start : start + 400]
        metrics.received_batch(batch, pipeline.process_batch(batch))
    _check("mt-batch", pipeline.counts)


def _series(source: str) -> dict[str, float]:
    """The received series of ``source`` by symbol."""
    return by_symbol("rrr_feed_messages_received_total", source)


def test_a_feed_of_random_symbols_adds_one_series_beyond_the_subscription():
    rng = random.Random(5)
    pipeline = MarketDataPipeline(source="mt-hostile", symbols=["AAA-USD"])
    metrics = FeedMetrics("mt-hostile", symbols=["AAA-USD"])
    for i in range(4000):
        symbol = "AAA-USD" if i % 4 == 0 else f"X{rng.getrandbits(48):x}-USD"
        event = Trade(symbol, T0 + timedelta(milliseconds=50 * i), 100.0, 0.5, trade_id=str(i))
        metrics.received_symbols.append(symbol)  # as runtrader counts it
        pipeline.process(event)
        if i % 500 == 0:
            metrics.sync()
    metrics.received_symbols.extend([["not", "hashable"], 7, None])  # a malformed frame's
    metrics.sync()
    series = _series("mt-hostile")
    assert series == {"AAA-USD": 1000, "_other": 3000, "": 3}
    assert pipeline.counts.unsubscribed == 3000
    assert len(metrics._received._children) == 1  # no state per unknown symbol either


def test_without_a_subscription_the_first_symbols_seen_get_series(monkeypatch):
    monkeypatch.setattr("monitoring.metrics.MAX_SYMBOL_SERIES", 3)
    metrics = FeedMetrics("mt-first")
    events = [Trade(f"S{i % 5}-USD", T0 + timedelta(seconds=i), 100.0, 0.5, trade_id=str(i))
              for i in range(50)]  # fmt: skip
    metrics.received_batch(events, [])
    metrics.sync()
    assert _series("mt-first") == {"S0-USD": 10, "S1-USD": 10, "S2-USD": 10, "_other": 20}
