"""Admin for research runs and findings (read-only results; a finding's strategy can be run)."""

from __future__ import annotations

from django.contrib import admin, messages

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
    list_display = ["id", "kind", "title", "status", "timeframe", "report", "created_at"]
    list_filter = ["kind", "status"]
    search_fields = ["title"]
    date_hierarchy = "created_at"
    inlines = [FindingInline]

    @admin.display(description="report")
    def report(self, obj: ResearchRun) -> str:
        """Return where the run's offline HTML report was written."""
        return (obj.summary or {}).get("report", "")


@admin.register(Finding)
class FindingAdmin(ReadOnlyModelAdmin):
    list_display = [
        "title",
        "run",
        "statistic",
        "p_value",
        "effect_size",
        "significant",
        "has_strategy",
    ]
    list_filter = ["significant", "run__kind"]
    search_fields = ["title", "description"]
    date_hierarchy = "created_at"
    actions = ["backtest_strategy"]

    @admin.display(boolean=True, description="strategy")
    def has_strategy(self, obj: Finding) -> bool:
        """Return True if the finding proposes a strategy that can be backtested."""
        return bool((obj.details or {}).get("strategy"))

    @admin.action(description="Backtest the proposed strategy over the study's period")
    def backtest_strategy(self, request, queryset) -> None:
        """Queue one backtest per selected finding that proposes a strategy."""
        from django_q.tasks import async_task

        queued = 0
        for finding in queryset:
            if self.has_strategy(finding):
                async_task("research.tasks.finding_backtest_task", finding.pk)
                queued += 1
        level = messages.SUCCESS if queued else messages.WARNING
        self.message_user(request, f"{queued} backtest(s) queued", level)
