"""Admin for risk: audited limits and sizing policies, events with acknowledge, trading states."""

from django.contrib import admin

from risk.choices import TradingStateChoice
from risk.models import RiskEvent, RiskLimit, SizingPolicy, TradingState
from risk.services import risk_event_acknowledge, risk_limit_update, trading_state_set
from rrr_site.admin_base import AuditedModelAdmin, ReadOnlyModelAdmin


@admin.register(RiskLimit)
class RiskLimitAdmin(AuditedModelAdmin):
    audit_action = "risk_limit"
    list_display = [
        "kind",
        "scope",
        "account",
        "scope_value",
        "value",
        "action",
        "enabled",
        "updated_at",
    ]
    list_editable = ["value", "enabled"]
    list_filter = ["enabled", "scope", "kind", "action", "account"]
    search_fields = ["kind", "scope_value", "description"]
    actions = ["enable_limits", "disable_limits"]

    @admin.action(description="Enable selected limits")
    def enable_limits(self, request, queryset):
        """Enable each selected limit (audited)."""
        for limit in queryset.filter(enabled=False):
            risk_limit_update(limit=limit, actor=request.user, enabled=True)

    @admin.action(description="Disable selected limits")
    def disable_limits(self, request, queryset):
        """Disable each selected limit (audited)."""
        for limit in queryset.filter(enabled=True):
            risk_limit_update(limit=limit, actor=request.user, enabled=False)


@admin.register(SizingPolicy)
class SizingPolicyAdmin(AuditedModelAdmin):
    """Pick each account's sizing (fixed fraction, volatility target, Kelly), per strategy too."""

    audit_action = "sizing_policy"
    list_display = [
        "account",
        "strategy",
        "method",
        "fraction",
        "target_volatility",
        "lookback",
        "kelly_multiplier",
        "enabled",
        "updated_at",
    ]
    list_editable = ["method", "fraction", "enabled"]
    list_filter = ["enabled", "method", "account"]
    search_fields = ["account__name", "strategy", "description"]


@admin.register(RiskEvent)
class RiskEventAdmin(ReadOnlyModelAdmin):
    list_display = ["ts", "account", "severity", "kind", "message", "acknowledged"]
    list_filter = ["severity", "kind", "acknowledged", "account"]
    search_fields = ["message", "kind"]
    date_hierarchy = "ts"
    actions = ["acknowledge"]

    @admin.action(description="Acknowledge selected events")
    def acknowledge(self, request, queryset):
        """Acknowledge each selected event."""
        for event in queryset.filter(acknowledged=False):
            risk_event_acknowledge(event=event, actor=request.user)


@admin.register(TradingState)
class TradingStateAdmin(AuditedModelAdmin):
    audit_action = "trading_state"
    list_display = ["account", "state", "reason", "changed_by", "changed_at"]
    list_filter = ["state"]
    search_fields = ["account__name", "reason"]
    readonly_fields = ["changed_by", "changed_at"]
    actions = ["halt", "resume"]

    def save_model(self, request, obj, form, change):
        """Record who changed the state and when."""
        from django.utils import timezone

        obj.changed_by = request.user
        obj.changed_at = timezone.now()
        super().save_model(request, obj, form, change)

    @admin.action(description="Halt selected accounts")
    def halt(self, request, queryset):
        """Halt the accounts of the selected states."""
        for state in queryset.select_related("account"):
            trading_state_set(
                account=state.account,
                state=TradingStateChoice.HALTED,
                reason=f"halted from admin by {request.user}",
                actor=request.user,
            )

    @admin.action(description="Resume selected accounts")
    def resume(self, request, queryset):
        """Resume the accounts of the selected states."""
        for state in queryset.select_related("account"):
            trading_state_set(
                account=state.account,
                state=TradingStateChoice.ACTIVE,
                reason=f"resumed from admin by {request.user}",
                actor=request.user,
            )
