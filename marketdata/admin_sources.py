"""Admin for TradingView hooks (token shown once at creation), signals and on-chain metrics."""

from __future__ import annotations

from django.contrib import admin, messages

from marketdata.models_sources import OnchainMetric, TradingViewHook, TradingViewSignal
from marketdata.tradingview import tradingview_hook_create
from rrr_site.admin_base import AuditedModelAdmin, ReadOnlyModelAdmin


@admin.register(TradingViewHook)
class TradingViewHookAdmin(AuditedModelAdmin):
    audit_action = "tradingview_hook"
    list_display = ["name", "account", "key", "active", "rate_per_minute", "last_used_at"]
    list_filter = ["active", "account"]
    readonly_fields = ["key", "created_at", "last_used_at"]
    fields = ["name", "account", "active", "rate_per_minute", "max_signal_age_seconds"]

    def save_model(self, request, obj: TradingViewHook, form, change: bool) -> None:
        """Create through the service (which generates and audits the secret); audit edits."""
        if change:
            super().save_model(request, obj, form, change)
            return
        hook, token = tradingview_hook_create(
            account=obj.account, name=obj.name, actor=request.user
        )
        TradingViewHook.objects.filter(pk=hook.pk).update(
            active=obj.active,
            rate_per_minute=obj.rate_per_minute,
            max_signal_age_seconds=obj.max_signal_age_seconds,
        )
        obj.pk = hook.pk
        url = request.build_absolute_uri(f"/hooks/tradingview/{token}")
        messages.warning(
            request, f"Webhook URL (shown only now; paste it into the TradingView alert): {url}"
        )


@admin.register(TradingViewSignal)
class TradingViewSignalAdmin(ReadOnlyModelAdmin):
    list_display = ["received_at", "account", "symbol", "action", "position_size", "status"]
    list_filter = ["status", "action", "account"]
    search_fields = ["alert_id", "ticker", "comment"]
    date_hierarchy = "received_at"


@admin.register(OnchainMetric)
class OnchainMetricAdmin(ReadOnlyModelAdmin):
    list_display = ["chain", "timeframe", "ts", "tx_count", "volume", "active_addresses", "fees"]
    list_filter = ["chain", "timeframe"]
    date_hierarchy = "ts"
