"""The running engine exports its feed, order, fill, slippage and portfolio series."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from marketdata.adapters.base import Malformed
from marketdata.engine.events import Trade
from marketdata.feeds import SimulatedFeed
from monitoring.metrics import EngineMetrics, reject_rule
from tests.runtime_harness import db, running, until
from trading.engine.orders import Fill, Liquidity, Order, OrderSide, OrderStatus, OrderType
from trading.engine.strategies import STRATEGIES, register
from trading.engine.strategy import Strategy
from trading.models import Order as OrderRow
from trading.runtime import RuntimeConfig, TradingRuntime

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]

if "test_metrics_every_bar" not in STRATEGIES:

    @register("test_metrics_every_bar")
    class EveryBar(Strategy):
        """Buys a little on every bar."""

        def on_bar(self, bar, ctx) -> None:
            ctx.buy(bar.symbol, Decimal("0.001"))


def value(name: str, **labels) -> float:
    """Return a sample's value from the default registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_engine_counts_events_orders_fills_and_sets_portfolio_gauges(paper):
    account = paper.name
    before_fills = value("rrr_fills_total", account=account, symbol="BTC-USD", side="buy")
    async with running(paper, strategy="test_metrics_every_bar") as runtime:
        await until(lambda: runtime.summary.fills >= 2, "two fills stored")
        # Only the engine's snapshot sets the trading-state gauge (other tests set equity).
        await until(
            lambda: value("rrr_trading_state", account=account, state="active") == 1,
            "a snapshot published",
        )
    assert value("rrr_engine_events_total", account=account) >= runtime.summary.events > 0
    assert value("rrr_feed_messages_received_total", source="sim", symbol="BTC-USD") > 0
    fills = value("rrr_fills_total", account=account, symbol="BTC-USD", side="buy") - before_fills
    assert (
        fills
        == await db(lambda: sum(o.fills.count() for o in OrderRow.objects.filter(account=paper)))()
    )
    assert value("rrr_orders_total", account=account, status="filled", type="market") >= 2
    assert value("rrr_engine_tick_to_order_seconds_count", account=account) >= 2
    assert value("rrr_fill_slippage_bps_count", account=account) >= fills
    assert value("rrr_trading_state", account=account, state="active") == 1.0
    assert value("rrr_trading_state", account=account, state="halted") == 0.0
    equity = value("rrr_portfolio_equity", account=account)
    assert equity == pytest.approx(100_000, rel=0.01)


def test_slippage_is_signed_against_the_decision_price_and_rejects_name_their_rule():
    prices = {"ETH-USD": Decimal("100")}
    metrics = EngineMetrics("slip-test", reference_price=prices.get)
    metrics.on_event(None)
    order = Order(symbol="ETH-USD", side=OrderSide.BUY, quantity=Decimal(1), account="slip-test")
    order.status = OrderStatus.OPEN
    metrics.on_order(order)
    prices["ETH-USD"] = Decimal("90")  # the market moves; the decision price stays 100
    fill = Fill(
        order.client_order_id,
        "ETH-USD",
        OrderSide.BUY,
        Decimal(1),
        Decimal("100.5"),
        Decimal(0),
        Liquidity.TAKER,
        None,
        account="slip-test",
    )
    metrics.on_fill(fill)
    # 50 bps worse than decided (the histogram has negative buckets, so no _sum is exported)
    assert value("rrr_fill_slippage_bps_bucket", account="slip-test", le="20.0") == 0
    assert value("rrr_fill_slippage_bps_bucket", account="slip-test", le="50.0") == 1
    rejected = Order(
        symbol="ETH-USD",
        side=OrderSide.SELL,
        quantity=Decimal(1),
        type=OrderType.LIMIT,
        price=Decimal(1),
        status=OrderStatus.REJECTED,
        account="slip-test",
        reject_reason="max_position_pct[symbol=ETH-USD]: would hold 30 % of equity",
    )
    metrics.on_order(rejected)
    assert value("rrr_order_rejects_total", account="slip-test", rule="max_position_pct") == 1
    assert reject_rule("something new") == "other"


class ListFeed(SimulatedFeed):
    """A feed of given events (wild prints, impossible and huge sizes, malformed frames)."""

    def __init__(self, events: list) -> None:
        super().__init__(["BTC-USD"])
        self.given = events

    async def events(self):
        for event in self.given:
            self.last_received_at = time.monotonic()
            yield event


def _feed_events() -> list:
    rng = random.Random(8)
    price, out = 100.0, []
    start = datetime.now(UTC).replace(microsecond=0)
    for i in range(1500):
        price *= 1 + rng.gauss(0, 0.001)
        symbol = "BTC-USD" if i % 3 else "ETH-USD"
        traded = price * (8 if i % 199 == 0 else 1)  # wild prints for the validator
        size = -1.0 if i % 301 == 0 else 30.0 if i % 173 == 100 else 0.5  # bad, huge (flagged)
        ts = start + timedelta(milliseconds=50 * i)
        out.append(Trade(symbol, ts, round(traded, 2), size, trade_id=str(i)))
        if i % 397 == 0:
            out.append(Malformed(raw="{not json", reason="bad frame", source="sim"))
        if i % 5 == 0:  # a symbol never subscribed, never seen again
            out.append(Trade(f"RND{i}-USD", ts, 1.0, 0.5, trade_id=f"r{i}"))
    return out


async def test_the_engine_counts_each_event_its_pipeline_saw_flagged_and_quarantined(paper):
    names = ("received", "flagged", "quarantined")
    before = {name: _feed_total(f"rrr_feed_messages_{name}_total") for name in names}
    config = RuntimeConfig(account=paper.name, symbols=["BTC-USD", "ETH-USD"], timeframe="1s",
                           store_market_data=False, heartbeat_interval=5.0)  # fmt: skip
    runtime = TradingRuntime(config, ListFeed(_feed_events()))
    await asyncio.wait_for(runtime.run(asyncio.Event()), 60)  # ends with the feed
    counts = runtime.pipeline.counts
    grown = {name: _feed_total(f"rrr_feed_messages_{name}_total") - before[name] for name in names}
    assert grown == {
        "received": counts.received,
        "flagged": counts.flagged,
        "quarantined": counts.quarantined + counts.malformed,
    }
    assert counts.flagged and counts.quarantined and counts.malformed  # the test bites
    assert value("rrr_engine_events_total", account=paper.name) >= runtime.summary.events > 1500
    # The unsubscribed symbols share one series: a feed of random symbols cannot grow them.
    symbols = {
        s.labels["symbol"]
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name.startswith("rrr_feed_messages_") and s.labels.get("source") == "sim"
    }
    assert counts.unsubscribed == 300 and not {s for s in symbols if s.startswith("RND")}


def _feed_total(name: str) -> float:
    return sum(
        s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == name and s.labels.get("source") == "sim"
    )


async def test_the_engine_publishes_its_feed_series_when_it_stops(paper):
    # No flush runs in this session: what is stored and counted reaches the series at the stop.
    stored_before = _feed_total("rrr_feed_rows_stored_total")
    config = RuntimeConfig(account=paper.name, symbols=["BTC-USD", "ETH-USD"], timeframe="1s",
                           flush_interval=3600.0, heartbeat_interval=3600.0)  # fmt: skip
    runtime = TradingRuntime(config, ListFeed(_feed_events()[:300]))
    await asyncio.wait_for(runtime.run(asyncio.Event()), 60)  # ends with the feed
    stored = sum(runtime.md_writer.stats.written_by_symbol.values())  # rows by symbol
    assert stored > 0
    assert _feed_total("rrr_feed_rows_stored_total") - stored_before == stored
    assert runtime.feed_metrics._synced == runtime.pipeline.counts.received
