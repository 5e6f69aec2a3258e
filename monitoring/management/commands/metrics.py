"""``manage.py metrics record``: store today's performance figures now (also scheduled daily)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from monitoring.performance import performance_metrics_record


class Command(BaseCommand):
    help = "Store per-account and per-model performance figures as PerformanceMetric rows now."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["record"], help="record: write the figures now")

    def handle(self, *args, **options) -> None:
        rows = performance_metrics_record()
        self.stdout.write(f"performance metrics recorded: {rows} rows")
