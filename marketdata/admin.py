"""Admin for market data: symbols are editable, observed data is read-only."""

from django.contrib import admin

from marketdata.models import (
    BackfillJob,
    Bar,
    BookSnapshot,
    DataQualityEvent,
    Quote,
    SentimentReading,
    Symbol,
    TradeTick,
)
from rrr_site.admin_base import AuditedModelAdmin, ReadOnlyModelAdmin


@admin.register(Symbol)
class SymbolAdmin(AuditedModelAdmin):
    audit_action = "symbol"
    list_display = ["name", "base", "quote", "tick_size", "lot_size", "reference_price", "active"]
    list_filter = ["active", "quote"]
    search_fields = ["name", "base", "quote"]


@admin.register(Bar)
class BarAdmin(ReadOnlyModelAdmin):
    list_display = ["symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"]
    list_filter = ["timeframe", "symbol"]
    search_fields = ["symbol__name"]
    date_hierarchy = "ts"
    show_full_result_count = False


@admin.register(TradeTick)
class TradeTickAdmin(ReadOnlyModelAdmin):
    list_display = ["symbol", "venue", "trade_id", "ts", "price", "size", "side"]
    list_filter = ["venue", "side", "symbol"]
    search_fields = ["trade_id", "symbol__name"]
    date_hierarchy = "ts"
    show_full_result_count = False


@admin.register(Quote)
class QuoteAdmin(ReadOnlyModelAdmin):
    list_display = ["symbol", "venue", "ts", "bid", "bid_size", "ask", "ask_size"]
    list_filter = ["venue", "symbol"]
    search_fields = ["symbol__name"]
    date_hierarchy = "ts"
    show_full_result_count = False


@admin.register(BookSnapshot)
class BookSnapshotAdmin(ReadOnlyModelAdmin):
    list_display = ["symbol", "venue", "ts", "sequence", "depth"]
    list_filter = ["venue", "symbol"]
    search_fields = ["symbol__name"]
    date_hierarchy = "ts"


@admin.register(SentimentReading)
class SentimentReadingAdmin(ReadOnlyModelAdmin):
    list_display = ["symbol", "source", "ts", "label", "score", "confidence", "sources_count"]
    list_filter = ["source", "label", "symbol"]
    search_fields = ["source", "symbol__name"]
    date_hierarchy = "ts"


@admin.register(BackfillJob)
class BackfillJobAdmin(ReadOnlyModelAdmin):
    list_display = [
        "symbol",
        "source",
        "timeframe",
        "start",
        "end",
        "cursor",
        "status",
        "rows_written",
        "updated_at",
    ]
    list_filter = ["status", "source", "timeframe"]
    search_fields = ["symbol__name", "error"]
    date_hierarchy = "created_at"


@admin.register(DataQualityEvent)
class DataQualityEventAdmin(ReadOnlyModelAdmin):
    list_display = ["ts", "symbol", "source", "rule", "verdict", "reason"]
    list_filter = ["verdict", "rule", "source"]
    search_fields = ["reason", "symbol__name"]
    date_hierarchy = "ts"


import marketdata.admin_sources  # noqa: E402, F401 - TradingView hooks, signals, on-chain metrics
