"""Admin for monitoring: events, metrics, alert rules and the read-only audit log."""

from django.contrib import admin

from monitoring.alerts import alert_acknowledge, alert_resolve
from monitoring.models import (
    Alert,
    AlertDelivery,
    AlertRule,
    AuditLog,
    PerformanceMetric,
    PushDevice,
    SystemEvent,
)
from rrr_site.admin_base import AuditedModelAdmin, ReadOnlyModelAdmin


@admin.register(SystemEvent)
class SystemEventAdmin(ReadOnlyModelAdmin):
    list_display = ["ts", "component", "kind", "severity", "message"]
    list_filter = ["component", "kind", "severity"]
    search_fields = ["message", "kind"]
    date_hierarchy = "ts"


@admin.register(PerformanceMetric)
class PerformanceMetricAdmin(ReadOnlyModelAdmin):
    list_display = ["ts", "name", "value", "unit"]
    list_filter = ["name"]
    search_fields = ["name"]
    date_hierarchy = "ts"


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyModelAdmin):
    list_display = ["at", "actor_repr", "action", "object_type", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_repr", "object_repr", "object_id", "action"]
    date_hierarchy = "at"


@admin.register(AlertRule)
class AlertRuleAdmin(AuditedModelAdmin):
    audit_action = "alert_rule"
    list_display = [
        "name", "source", "kind", "min_severity", "account", "symbol", "channel", "target",
        "cooldown_seconds", "escalate_after_minutes", "escalation_channel", "enabled",
    ]  # fmt: skip
    list_filter = ["channel", "min_severity", "enabled", "source"]
    search_fields = ["name", "target", "kind", "account", "symbol"]


class AlertDeliveryInline(admin.TabularInline):
    model = AlertDelivery
    extra = 0
    can_delete = False
    fields = ["created_at", "channel", "target", "escalation", "status", "attempts", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        """Deliveries are made by the router, never by hand."""
        return False


@admin.register(Alert)
class AlertAdmin(ReadOnlyModelAdmin):
    list_display = [
        "last_seen", "severity", "kind", "account", "symbol", "state", "occurrences",
        "deduplicated", "rule", "message",
    ]  # fmt: skip
    list_filter = ["state", "severity", "kind", "source"]
    search_fields = ["message", "kind", "account", "symbol"]
    date_hierarchy = "last_seen"
    inlines = [AlertDeliveryInline]
    actions = ["acknowledge", "resolve"]

    def get_actions(self, request):
        """Offer the state changes to users who may change alerts (ReadOnly hides them)."""
        actions = super().get_actions(request)
        if not request.user.has_perm("monitoring.change_alert"):
            actions.pop("acknowledge", None)
            actions.pop("resolve", None)
        return actions

    @admin.action(description="Acknowledge (stops escalation)", permissions=["view"])
    def acknowledge(self, request, queryset) -> None:
        """Acknowledge the selected alerts (audited)."""
        for alert in queryset:
            alert_acknowledge(alert=alert, actor=request.user)
        self.message_user(request, f"{queryset.count()} alert(s) acknowledged")

    @admin.action(description="Resolve", permissions=["view"])
    def resolve(self, request, queryset) -> None:
        """Resolve the selected alerts (audited)."""
        for alert in queryset:
            alert_resolve(alert=alert, actor=request.user)
        self.message_user(request, f"{queryset.count()} alert(s) resolved")


@admin.register(PushDevice)
class PushDeviceAdmin(ReadOnlyModelAdmin):
    list_display = ["user", "device_id", "platform", "active", "updated_at"]
    list_filter = ["platform", "active"]
    search_fields = ["device_id", "user__username"]
    exclude = ["token"]
