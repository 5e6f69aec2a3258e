"""Rows stored are counted per symbol exactly, on SQLite and PostgreSQL: a row a conflict skipped
(a replay, a reconnect's duplicate) is never counted, by the store, the writer or the feed's
``rrr_feed_rows_stored{source, symbol}``."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from marketdata.engine.events import Bar, Quote, SentimentReading, Side, Trade
from marketdata.models import SentimentReading as SentimentRow
from marketdata.models import TradeTick
from marketdata.pipeline import QualityRecord
from marketdata.storage import COPY_MIN_ROWS, AsyncBatchWriter, MarketDataStore
from monitoring.metrics import FeedMetrics
from tests.factories import SymbolFactory
from tests.prometheus_samples import by_symbol

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def trades(symbol: str, start: int, n: int) -> list[Trade]:
    """Return trades ``start``..``start + n - 1`` of ``symbol`` (same ids: same rows)."""
    return [
        Trade(symbol, T0 + dt.timedelta(milliseconds=i), 100 + i, 0.5, "venue", f"{symbol}:{i}",
              Side.BUY)
        for i in range(start, start + n)
    ]  # fmt: skip


@pytest.fixture
def symbols(db):
    for name in ("BTC-USD", "ETH-USD", "SOL-USD"):
        SymbolFactory(name=name)


@pytest.mark.parametrize("size", [10, COPY_MIN_ROWS + 10], ids=["insert", "copy"])
def test_a_replayed_duplicate_is_not_counted_for_its_symbol(symbols, size):
    store = MarketDataStore()
    first = store.write(trades("BTC-USD", 0, size) + trades("ETH-USD", 0, 3))
    assert first.by_symbol == {"BTC-USD": size, "ETH-USD": 3}
    # BTC replays all but one new trade (on PostgreSQL a large batch's COPY hits the stored rows
    # and falls back to the INSERT); ETH replays everything; SOL is new.
    again = store.write(
        trades("BTC-USD", 1, size) + trades("ETH-USD", 0, 3) + trades("SOL-USD", 0, 2)
    )
    assert again.by_symbol == {"BTC-USD": 1, "SOL-USD": 2}
    assert again.written["trades"] == 3
    assert TradeTick.objects.count() == size + 1 + 3 + 2


def test_bars_count_an_amendment_but_not_an_identical_replay(symbols):
    store = MarketDataStore()
    bar = Bar("BTC-USD", "1m", T0, 10, 12, 9, 11, 5.0, 10.5, 3, venue="venue")
    other = Bar("ETH-USD", "1m", T0, 1, 1, 1, 1, 1.0, None, 1, venue="venue")
    assert store.write([bar, other]).by_symbol == {"BTC-USD": 1, "ETH-USD": 1}
    assert store.write([bar, other]).by_symbol == {}  # identical: nothing written
    amended = Bar("BTC-USD", "1m", T0, 10, 13, 9, 12.5, 7.0, 11.0, 4, venue="venue")
    result = store.write([amended, other])
    assert result.by_symbol == {"BTC-USD": 1}
    assert result.written["bars"] == 1


def test_quotes_sentiment_and_quality_findings(symbols):
    store = MarketDataStore()
    quote = Quote("SOL-USD", T0, 1.0, 2.0, 1.1, 3.0, venue="venue")
    market = SentimentReading("", T0, "news", 0.2, 0.9)  # market-wide: no symbol
    finding = QualityRecord(ts=T0, source="venue", symbol="SOL-USD", rule="r", verdict="flag",
                            reason="", event_ts=T0, payload={})  # fmt: skip
    result = store.write([quote, market, finding])
    # Quality findings are a log about the data (counted as flagged/quarantined), not data.
    assert result.by_symbol == {"SOL-USD": 1, "": 1}
    assert result.written == {"quotes": 1, "sentiment": 1, "quality": 1}
    reading = SentimentReading("SOL-USD", T0, "news", 0.2, 0.9)
    assert store.write([quote, reading, finding]).by_symbol == {"SOL-USD": 1}
    assert store.write([quote, reading, finding]).by_symbol == {}


def test_a_replayed_market_wide_reading_is_stored_once(symbols):
    """A NULL symbol never matches the (source, symbol, ts) key: the market's own key holds."""
    store = MarketDataStore()
    market = SentimentReading("", T0, "news", 0.2, 0.9)
    later = SentimentReading("", T0 + dt.timedelta(minutes=1), "news", -0.1, 0.5)
    assert store.write([market]).written == {"sentiment": 1}
    result = store.write([market, later])
    assert result.written == {"sentiment": 1}  # only the new one
    assert store.write([market, later]).by_symbol == {}
    assert SentimentRow.objects.filter(symbol__isnull=True).count() == 2
    # Another source at the same instant is another reading.
    assert store.write([SentimentReading("", T0, "x", 0.0, 0.1)]).written == {"sentiment": 1}


def _stored(source: str) -> dict[str, float]:
    return by_symbol("rrr_feed_rows_stored_total", source)


@pytest.mark.django_db(transaction=True)
def test_the_writer_and_the_feed_metric_count_per_symbol_through_replays_and_rejects(symbols):
    metrics, rejected = FeedMetrics("counts-test"), []

    async def scenario():
        writer = AsyncBatchWriter(
            batch_size=64, flush_interval=0.01, on_reject=lambda e, why: rejected.append(e)
        ).start()
        await writer.put_many(trades("BTC-USD", 0, 100) + trades("ETH-USD", 0, 10))
        await writer.put_many(trades("BTC-USD", 50, 100))  # 50 replayed, 50 new
        # An unknown symbol sends the chunk through bisection; its neighbours still count.
        await writer.put_many([*trades("ETH-USD", 5, 10), *trades("NOPE-USD", 0, 1)])
        while writer.stats.offered < writer.stats.queued:
            await asyncio.sleep(0.01)
        metrics.sync(stored=writer.stats.written_by_symbol)
        await writer.put_many(trades("SOL-USD", 0, 7) + trades("BTC-USD", 0, 150))
        return await writer.close()

    stats = asyncio.run(scenario())
    metrics.sync(stored=stats.written_by_symbol)
    assert len(rejected) == 1
    assert stats.written_by_symbol == {"BTC-USD": 150, "ETH-USD": 15, "SOL-USD": 7}
    assert _stored("counts-test") == {"BTC-USD": 150, "ETH-USD": 15, "SOL-USD": 7}
    assert TradeTick.objects.count() == 172
