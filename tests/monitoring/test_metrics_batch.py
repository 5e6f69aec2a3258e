"""Batched series (``monitoring.metrics_batch``) equal prometheus-client's own per-call series.

The engine's hooks count in plain ints and bucket counts; a scrape of the default registry, a
publish, the owner's collection or the process's exit pushes them into the real series. Each
test feeds a seeded sequence both ways and compares what a scrape reads.
"""

from __future__ import annotations

import gc
import math
import random
import threading
from decimal import Decimal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitoring import metrics_batch
from monitoring.metrics import (
    ML_INFERENCE,
    SLIPPAGE_BPS,
    TICK_TO_ORDER,
    EngineMetrics,
    FeedMetrics,
    TimedPredictor,
)
from monitoring.metrics_batch import CounterBatch, HistogramBatch, metrics_publish
from trading.engine.orders import Fill, Liquidity, Order, OrderSide, OrderStatus, OrderType


class Owner:
    """Something a batch can live as long as (anything weakly referenceable)."""


def scrape(registry=REGISTRY) -> dict[tuple[str, tuple], float]:
    """Return every sample of an exposition of ``registry`` (as Prometheus would read it)."""
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series(samples: dict, name: str, **labels) -> dict[str, float]:
    """Return {le: value} of a histogram's buckets, or {"": value} of a plain sample."""
    out = {}
    for (sample, found), value in samples.items():
        found = dict(found)
        le = found.pop("le", "")
        if sample == name and found == labels:
            out[le] = value
    return out


def reference_histogram(metric: Histogram, values) -> tuple[dict[str, float], float]:
    """Observe ``values`` one by one in a private histogram with ``metric``'s buckets."""
    registry = CollectorRegistry()
    bounds = metric._kwargs["buckets"]
    reference = Histogram("reference", "reference", buckets=bounds, registry=registry)
    for value in values:
        reference.observe(value)
    # (no _sum is exported when a bucket is negative: read it from the child)
    return series(scrape(registry), "reference_bucket"), reference._sum.get()


def latencies(rng: random.Random, count: int) -> list[float]:
    """Seeded latencies around the tick-to-order buckets, bounds exactly hit and beyond."""
    bounds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]
    out = [rng.lognormvariate(math.log(0.0003), 1.5) for _ in range(count)]
    out += bounds + [0.0, 2.5, 1e9]  # on a bound counts in it (le), then +Inf
    rng.shuffle(out)
    return out


def test_histogram_batch_buckets_equal_observe_one_by_one_after_a_scrape():
    rng = random.Random(17)
    values = latencies(rng, 5000)
    account = "batch-hist"
    batch = HistogramBatch(TICK_TO_ORDER, account)
    owner = Owner()
    metrics_batch.batches_register(owner, [batch])  # published on every collect from now on
    for i, value in enumerate(values):
        batch.observe(value)
        if i in (10, 2500):  # scrapes in the middle publish only what grew since
            scrape()
    samples = scrape()  # no explicit publish: the scrape itself publishes
    buckets = series(samples, "rrr_engine_tick_to_order_seconds_bucket", account=account)
    expected, expected_sum = reference_histogram(TICK_TO_ORDER, values)
    assert buckets == expected
    assert buckets["+Inf"] == len(values)
    total = samples[("rrr_engine_tick_to_order_seconds_sum", (("account", account),))]
    assert total == expected_sum  # each value added in turn: the very float observe() sums


def test_histogram_batch_places_nan_and_negative_values_as_the_client_does():
    values = [-60.0, -50.0, -0.5, 0.0, 3.0, 250.0, float("nan"), 7.0]
    batch = HistogramBatch(SLIPPAGE_BPS, "batch-nan")
    for value in values:
        batch.observe(value)
    batch.publish()
    samples = scrape()
    expected, expected_sum = reference_histogram(SLIPPAGE_BPS, values)
    assert series(samples, "rrr_fill_slippage_bps_bucket", account="batch-nan") == expected
    assert expected["+Inf"] == 7  # NaN counts in no bucket
    assert math.isnan(expected_sum) and math.isnan(batch._child._sum.get())


def test_counter_batch_publishes_growth_only_and_exact_totals():
    registry = CollectorRegistry()
    counter = Counter("batched", "batched", ["source", "symbol"], registry=registry)
    batch = CounterBatch(counter, "src")
    rng = random.Random(5)
    expected: dict[str, int] = {}
    for i in range(3000):
        symbol = rng.choice(["AAA", "BBB", "CCC"])
        batch.add(symbol)
        expected[symbol] = expected.get(symbol, 0) + 1
        if i % 700 == 0:
            batch.publish()
    batch.publish()
    batch.publish()  # nothing grew: nothing added twice
    samples = scrape(registry)
    got = {s: samples[("batched_total", (("source", "src"), ("symbol", s)))] for s in expected}
    assert got == expected


def _order(symbol: str, side: OrderSide, status: OrderStatus, kind: OrderType) -> Order:
    order = Order(symbol=symbol, side=side, quantity=Decimal(1), account="batch-engine", type=kind)
    if kind is OrderType.LIMIT:
        order.price = Decimal(100)
    order.status = status
    if status is OrderStatus.REJECTED:
        order.reject_reason = "max_open_orders: 5 open"
    return order


def test_engine_metrics_scrape_equals_a_replay_of_the_same_seeded_events():
    rng = random.Random(23)
    account = "batch-engine"
    prices = {"ETH-USD": Decimal("100"), "BTC-USD": Decimal("200")}
    metrics = EngineMetrics(account, reference_price=prices.get)
    events, statuses, fills, slips = 0, {}, {}, []
    for _ in range(2000):
        metrics.on_event(None)  # no receive time: no latency, as the runtime's replays
        events += 1
        symbol = rng.choice(sorted(prices))
        side = rng.choice([OrderSide.BUY, OrderSide.SELL])
        status = rng.choice([OrderStatus.OPEN, OrderStatus.REJECTED, OrderStatus.FILLED])
        kind = rng.choice([OrderType.MARKET, OrderType.LIMIT])
        order = _order(symbol, side, status, kind)
        if status is OrderStatus.FILLED:
            price = prices[symbol] * Decimal(str(1 + rng.uniform(-0.003, 0.003)))
            metrics.on_fill(
                Fill(order.client_order_id, symbol, side, Decimal(1), price, Decimal(0),
                     Liquidity.TAKER, None, account=account)
            )  # fmt: skip
            fills[(symbol, side.value)] = fills.get((symbol, side.value), 0) + 1
            sign = 1.0 if side is OrderSide.BUY else -1.0
            reference = float(prices[symbol])
            slips.append(sign * (float(price) - reference) / reference * 1e4)
        metrics.on_order(order)
        key = (status.value, kind.value)
        statuses[key] = statuses.get(key, 0) + 1
    samples = scrape()
    acc = (("account", account),)
    assert samples[("rrr_engine_events_total", acc)] == events
    for (status, kind), count in statuses.items():
        labels = (("account", account), ("status", status), ("type", kind))
        assert samples[("rrr_orders_total", labels)] == count
    for (symbol, side), count in fills.items():
        labels = (("account", account), ("side", side), ("symbol", symbol))
        assert samples[("rrr_fills_total", labels)] == count
    rejected = statuses.get(("rejected", "market"), 0) + statuses.get(("rejected", "limit"), 0)
    rule = (("account", account), ("rule", "max_open_orders"))
    assert samples[("rrr_order_rejects_total", rule)] == rejected > 0
    expected, _ = reference_histogram(SLIPPAGE_BPS, slips)
    assert series(samples, "rrr_fill_slippage_bps_bucket", account=account) == expected


def test_feed_metrics_counts_reach_a_scrape_without_a_sync():
    class Flagged:
        verdict = "flag"

    metrics = FeedMetrics("batch-feed")
    for i in range(1000):
        metrics.received("AAA-USD" if i % 4 else "BBB-USD", None, [Flagged()] if i % 9 == 0 else [])
    samples = scrape()
    received = "rrr_feed_messages_received_total"
    assert samples[(received, (("source", "batch-feed"), ("symbol", "AAA-USD")))] == 750
    assert samples[(received, (("source", "batch-feed"), ("symbol", "BBB-USD")))] == 250
    flagged = sum(
        v for (name, labels), v in samples.items()
        if name == "rrr_feed_messages_flagged_total" and ("source", "batch-feed") in labels
    )  # fmt: skip
    assert flagged == 112


def test_a_collected_owners_last_counts_are_published_then_dropped():
    metrics = EngineMetrics("batch-gone")
    metrics.reference_price = metrics._reference  # a cycle, as with the OMS: only gc frees it
    for _ in range(37):
        metrics.on_event(None)
    batches = {metrics._events, metrics._latency}
    del metrics
    gc.collect()
    assert REGISTRY.get_sample_value("rrr_engine_events_total", {"account": "batch-gone"}) == 37
    metrics_publish()
    assert not batches & metrics_batch._BATCHES


def test_timed_predictor_counts_predictions_and_times_each_call():
    class Model:
        model_name = "batch-model"

        def predict(self, bar, *args):
            return None if bar.symbol == "NONE" else 0.7

    class Bar:
        def __init__(self, symbol: str) -> None:
            self.symbol = symbol

    predictor = TimedPredictor(Model(), "batch-model")
    for symbol in ["AAA"] * 5 + ["NONE"] * 2:
        predictor.predict(Bar(symbol))
    assert predictor.model_name == "batch-model"
    samples = scrape()
    labels = (("model", "batch-model"), ("symbol", "AAA"))
    assert samples[("rrr_ml_predictions_total", labels)] == 5
    assert ("rrr_ml_predictions_total", (("model", "batch-model"), ("symbol", "NONE"))) not in (
        samples
    )
    inference = series(samples, "rrr_ml_inference_seconds_bucket", model="batch-model")
    assert inference["+Inf"] == 7
    assert ML_INFERENCE.labels("batch-model")._sum.get() > 0


def test_scrapes_from_another_thread_never_lose_or_double_a_count():
    metrics = FeedMetrics("batch-threads")
    stop = threading.Event()

    def scrape_all_the_time() -> None:
        while not stop.is_set():
            REGISTRY.get_sample_value(
                "rrr_feed_messages_received_total",
                {"source": "batch-threads", "symbol": "AAA-USD"},
            )

    scraper = threading.Thread(target=scrape_all_the_time)
    scraper.start()
    try:
        for _ in range(200_000):
            metrics.received("AAA-USD", None, ())
    finally:
        stop.set()
        scraper.join(30)
    value = REGISTRY.get_sample_value(
        "rrr_feed_messages_received_total", {"source": "batch-threads", "symbol": "AAA-USD"}
    )
    assert value == 200_000
