"""Bulk storage is idempotent on the unique keys; the async writer batches without losing events."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from marketdata.engine.events import Bar, BookSnapshot, Quote, SentimentReading, Side, Trade
from marketdata.models import Bar as BarRow
from marketdata.models import BookSnapshot as BookRow
from marketdata.models import Quote as QuoteRow
from marketdata.models import SentimentReading as SentimentRow
from marketdata.models import TradeTick
from marketdata.storage import COPY_MIN_ROWS, AsyncBatchWriter, MarketDataStore, UnknownSymbol
from tests.factories import SymbolFactory

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def trades(n: int, start: int = 0, symbol: str = "BTC-USD") -> list[Trade]:
    """Return ``n`` distinct trades."""
    return [
        Trade(
            symbol,
            T0 + dt.timedelta(milliseconds=10 * i),
            50_000 + i,
            0.01 * (i % 7 + 1),
            "polygon",
            f"t{i}",
            Side.BUY if i % 2 else Side.SELL,
        )
        for i in range(start, start + n)
    ]


@pytest.mark.django_db
def test_trades_are_written_once_whatever_the_replays():
    SymbolFactory(name="BTC-USD")
    store = MarketDataStore()
    first = store.write(trades(500))
    again = store.write(trades(500, start=200))  # overlaps 200..499, adds 500..699
    assert first.written["trades"] == 500
    assert again.written["trades"] == 200
    assert TradeTick.objects.count() == 700
    row = TradeTick.objects.get(trade_id="t3")
    assert (row.price, row.side, row.ts) == (50_003, "buy", T0 + dt.timedelta(milliseconds=30))


@pytest.mark.django_db
def test_bars_upsert_so_an_amended_bar_replaces_the_stored_one():
    SymbolFactory(name="ETH-USD")
    store = MarketDataStore()
    bar = Bar("ETH-USD", "1m", T0, 10, 12, 9, 11, 5.0, 10.5, 3)
    store.write([bar])
    amended = Bar("ETH-USD", "1m", T0, 10, 13, 9, 12.5, 7.0, 11.0, 4)
    store.write([amended, Bar("ETH-USD", "1m", T0 + dt.timedelta(minutes=1), 12, 12, 12, 12, 1)])
    rows = list(BarRow.objects.order_by("ts").values_list("high", "close", "volume", "trade_count"))
    assert rows == [(13, 12.5, 7.0, 4), (12, 12, 1.0, 0)]


@pytest.mark.django_db
def test_quotes_books_and_sentiment_are_idempotent():
    SymbolFactory(name="SOL-USD")
    store = MarketDataStore()
    batch = [
        Quote("SOL-USD", T0, 99.9, 5, 100.1, 6),
        BookSnapshot("SOL-USD", T0, ((99.9, 5.0), (99.8, 7.0)), ((100.1, 6.0),), sequence=7),
        SentimentReading("SOL-USD", T0, "sim", 0.4, 0.8, "bullish", 3, 1, 4),
    ]
    store.write(batch)
    store.write(batch)
    assert QuoteRow.objects.count() == BookRow.objects.count() == SentimentRow.objects.count() == 1
    book = BookRow.objects.get()
    assert book.bids == [[99.9, 5.0], [99.8, 7.0]] and book.depth == 2 and book.sequence == 7


@pytest.mark.django_db
def test_unknown_symbol_is_an_error():
    with pytest.raises(UnknownSymbol):
        MarketDataStore().write(trades(1, symbol="NOPE-USD"))


@pytest.mark.django_db(transaction=True)
def test_async_writer_batches_and_isolates_bad_events():
    SymbolFactory(name="BTC-USD")
    rejected: list[tuple[object, str]] = []

    async def scenario():
        writer = AsyncBatchWriter(
            batch_size=128, flush_interval=0.01, on_reject=lambda e, why: rejected.append((e, why))
        ).start()
        batch = trades(1000)
        batch.insert(417, trades(1, start=5000, symbol="NOPE-USD")[0])
        for event in batch:
            await writer.put(event, received_at=writer.clock())
        return await asyncio.wait_for(writer.close(), 30)

    stats = asyncio.run(scenario())
    assert TradeTick.objects.count() == 1000
    assert stats.offered == 1001 and stats.written == 1000 and stats.rejected == 1
    assert [e.symbol for e, _ in rejected] == ["NOPE-USD"] and "UnknownSymbol" in rejected[0][1]
    assert stats.batches >= 8 and len(stats.latencies) == 1001


@pytest.mark.django_db
def test_storage_rejections_are_kept_as_quality_events():
    from marketdata.models import DataQualityEvent
    from marketdata.services import quality_event_record_rejected

    bad = trades(1, symbol="NOPE-USD")[0]
    quality_event_record_rejected(event=bad, reason="UnknownSymbol: NOPE-USD", source="polygon")
    row = DataQualityEvent.objects.get()
    assert (row.rule, row.verdict, row.source) == ("storage_rejected", "quarantine", "polygon")
    assert row.payload["trade_id"] == "t0" and row.symbol is None


@pytest.mark.django_db
def test_a_batch_overlapping_stored_rows_falls_back_to_insert_if_absent_in_one_transaction():
    SymbolFactory(name="BTC-USD")
    store = MarketDataStore()
    size = COPY_MIN_ROWS + 200  # large enough for the plain COPY on PostgreSQL
    assert store.write(trades(size, start=size)).written == {"trades": size}
    store.write(trades(3, start=10))
    bars = [Bar("BTC-USD", "1m", T0, 10, 12, 9, 11, 5.0, 10.5, 3)]
    result = store.write([*trades(size + 5), *bars])  # t10..t12 and t<size>.. are stored
    assert result.written == {"trades": size - 3, "bars": 1}
    assert TradeTick.objects.count() == 2 * size and BarRow.objects.count() == 1


@pytest.mark.django_db
def test_quality_records_are_stored_with_their_payload():
    from marketdata.models import DataQualityEvent
    from marketdata.pipeline import QualityRecord

    SymbolFactory(name="BTC-USD")
    records = [
        QualityRecord(T0, "polygon", "BTC-USD", "price_spike", "quarantine", "moved", T0, {"p": 1}),
        QualityRecord(T0, "polygon", "NOPE-USD", "malformed", "quarantine", "bad", None, {}),
    ]
    result = MarketDataStore().write(records)
    assert result.written == {"quality": 2}
    rows = DataQualityEvent.objects.order_by("id")
    assert [(r.symbol.name if r.symbol else None, r.rule, r.payload, r.event_ts) for r in rows] == [
        ("BTC-USD", "price_spike", {"p": 1}, T0),
        (None, "malformed", {}, None),
    ]


@pytest.mark.django_db
def test_rows_the_database_refuses_raise_integrity_error_on_every_backend():
    from django.db import IntegrityError

    SymbolFactory(name="ETH-USD")
    impossible = Bar("ETH-USD", "1m", T0, 10, 9, 8, 11, 5.0)  # high below close
    with pytest.raises(IntegrityError):
        MarketDataStore().write([impossible])


@pytest.mark.django_db(transaction=True)
def test_async_writer_takes_chunks_whole_and_pushes_back_when_full():
    import threading

    SymbolFactory(name="BTC-USD")
    gate = threading.Event()
    sizes: list[int] = []

    class GatedStore(MarketDataStore):
        def write(self, events):
            gate.wait(10)
            sizes.append(len(events))
            return super().write(events)

    async def scenario():
        writer = AsyncBatchWriter(
            GatedStore(), max_queue=300, batch_size=250, flush_interval=0.01
        ).start()
        await writer.put_many(trades(100), [writer.clock()] * 100)
        for k in range(1, 6):  # 1, 2 fill the queue; 3 waits until the writer takes 0..2
            await writer.put_many(trades(100, start=100 * k))
        blocked = asyncio.create_task(writer.put_many(trades(100, start=600)))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not blocked.done()  # 300 events pending while the first write is held
        gate.set()
        await asyncio.wait_for(blocked, 10)
        return await asyncio.wait_for(writer.close(), 30)

    stats = asyncio.run(scenario())
    assert TradeTick.objects.count() == 700 and stats.offered == stats.written == 700
    assert sizes == [300, 300, 100]  # chunks of 100 are never split across writes
    assert len(stats.latencies) == 100


@pytest.mark.django_db(transaction=True)
def test_async_writer_isolates_bad_events_of_a_chunk():
    SymbolFactory(name="BTC-USD")
    rejected: list[object] = []

    async def scenario():
        writer = AsyncBatchWriter(flush_interval=0.01, on_reject=lambda e, why: rejected.append(e))
        writer.start()
        await writer.put_many(trades(50))  # rows built on the loop once the symbol is cached
        await writer.put_many([*trades(50, start=50), *trades(1, start=900, symbol="NOPE-USD")])
        return await asyncio.wait_for(writer.close(), 30)

    stats = asyncio.run(scenario())
    assert TradeTick.objects.count() == 100 and stats.rejected == 1
    assert [e.symbol for e in rejected] == ["NOPE-USD"]
