"""Research: studies (stat-arb, order flow, patterns, hypothesis tests) and what they found."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from research.choices import ResearchKind, RunStatus


class ResearchRun(models.Model):
    """One study over a symbol set and period."""

    kind = models.CharField(max_length=16, choices=ResearchKind.choices)
    title = models.CharField(max_length=200, blank=True)
    params = models.JSONField(default=dict, blank=True)
    symbols = models.JSONField(default=list, blank=True)
    timeframe = models.CharField(max_length=4, default="1h")
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} {self.title}"


class Finding(models.Model):
    """A result of a study, with its test statistic and significance after correction."""

    run = models.ForeignKey(ResearchRun, on_delete=models.CASCADE, related_name="findings")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    statistic = models.FloatField(null=True, blank=True)
    p_value = models.FloatField(null=True, blank=True)
    effect_size = models.FloatField(null=True, blank=True)
    significant = models.BooleanField(default=False)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(p_value__isnull=True) | Q(p_value__gte=0, p_value__lte=1),
                name="finding_p_value_range",
            ),
        ]

    def __str__(self) -> str:
        return self.title
