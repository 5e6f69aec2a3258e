"""Admin for monitoring: events, metrics, alert rules and the read-only audit log."""

from django.contrib import admin

from monitoring.models import AlertRule, AuditLog, PerformanceMetric, SystemEvent
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
    list_display = ["name", "source", "min_severity", "channel", "target", "enabled"]
    list_filter = ["channel", "min_severity", "enabled"]
    search_fields = ["name", "target"]
