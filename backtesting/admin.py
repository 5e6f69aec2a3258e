"""Admin for backtests: runs with their trades (read-only results)."""

from django.contrib import admin

from backtesting.models import BacktestRun, BacktestTrade
from rrr_site.admin_base import ReadOnlyModelAdmin


class BacktestTradeInline(admin.TabularInline):
    model = BacktestTrade
    extra = 0
    can_delete = False
    fields = [
        "symbol",
        "side",
        "quantity",
        "entry_ts",
        "entry_price",
        "exit_ts",
        "exit_price",
        "pnl",
        "return_pct",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        """Trades come from the runner only."""
        return False


@admin.register(BacktestRun)
class BacktestRunAdmin(ReadOnlyModelAdmin):
    list_display = [
        "id",
        "strategy",
        "timeframe",
        "start",
        "end",
        "fill_model",
        "status",
        "progress",
        "created_at",
    ]
    list_filter = ["status", "strategy", "fill_model", "optimize"]
    search_fields = ["name", "strategy", "error"]
    date_hierarchy = "created_at"
    inlines = [BacktestTradeInline]


@admin.register(BacktestTrade)
class BacktestTradeAdmin(ReadOnlyModelAdmin):
    list_display = ["run", "symbol", "side", "quantity", "entry_ts", "exit_ts", "pnl", "return_pct"]
    list_filter = ["side", "symbol"]
    search_fields = ["symbol"]
    date_hierarchy = "entry_ts"
