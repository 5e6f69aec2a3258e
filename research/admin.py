"""Admin for research runs and findings (read-only results)."""

from django.contrib import admin

from research.models import Finding, ResearchRun
from rrr_site.admin_base import ReadOnlyModelAdmin


class FindingInline(admin.TabularInline):
    model = Finding
    extra = 0
    can_delete = False
    fields = ["title", "statistic", "p_value", "effect_size", "significant"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        """Findings come from studies only."""
        return False


@admin.register(ResearchRun)
class ResearchRunAdmin(ReadOnlyModelAdmin):
    list_display = ["id", "kind", "title", "status", "timeframe", "created_at"]
    list_filter = ["kind", "status"]
    search_fields = ["title"]
    date_hierarchy = "created_at"
    inlines = [FindingInline]


@admin.register(Finding)
class FindingAdmin(ReadOnlyModelAdmin):
    list_display = ["title", "run", "statistic", "p_value", "effect_size", "significant"]
    list_filter = ["significant"]
    search_fields = ["title", "description"]
    date_hierarchy = "created_at"
