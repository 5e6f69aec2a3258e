"""Serializers of research runs and findings (reads) and of the run and backtest requests."""

from __future__ import annotations

from rest_framework import serializers

from marketdata.data_source import DATA_SOURCES
from marketdata.engine.events import Timeframe
from research.choices import STUDY_KINDS, ResearchKind, RunStatus
from research.engine.names import CORRECTIONS, OVERLAP_METHODS
from research.models import Finding, ResearchRun
from rrr_site.api.pagination import KeysetQuery
from rrr_site.api.strategy_names import strategy_name_check

MAX_SYMBOLS = 50


class ResearchRunListQuery(KeysetQuery):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    kind = serializers.ChoiceField(choices=ResearchKind.choices, required=False)


class ResearchFindingListQuery(KeysetQuery):
    run = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
    significant = serializers.BooleanField(required=False, allow_null=True, default=None)


class ResearchFindingSerializer(serializers.ModelSerializer):
    """A result with its statistic, corrected p-value, effect size and details."""

    has_strategy = serializers.SerializerMethodField(
        help_text="True when the finding proposes a strategy that can be backtested"
    )

    class Meta:
        model = Finding
        fields = [
            "id", "run", "title", "description", "statistic", "p_value", "effect_size",
            "significant", "details", "has_strategy", "created_at",
        ]  # fmt: skip

    def get_has_strategy(self, finding: Finding) -> bool:
        return bool((finding.details or {}).get("strategy"))


class ResearchRunSerializer(serializers.ModelSerializer):
    """A study's inputs, state and summary (the report's server path is not exposed)."""

    class Meta:
        model = ResearchRun
        fields = [
            "id", "kind", "title", "params", "symbols", "timeframe", "start", "end", "status",
            "summary", "error", "created_at", "finished_at",
        ]  # fmt: skip

    def to_representation(self, run: ResearchRun) -> dict:
        data = super().to_representation(run)
        summary = dict(data.get("summary") or {})
        data["has_report"] = bool(summary.pop("report", None))
        data["summary"] = summary
        return data


class ResearchRunDetailSerializer(ResearchRunSerializer):
    """A run with its findings, most significant first."""

    findings = ResearchFindingSerializer(many=True, source="api_findings")

    class Meta(ResearchRunSerializer.Meta):
        fields = ResearchRunSerializer.Meta.fields + ["findings"]


class ResearchRunCreateSerializer(serializers.Serializer):
    """A study to run: what, on which bars, with which tests (defaults as the command's)."""

    def validate_strategy(self, value: str) -> str:
        return strategy_name_check(value)  # never a file path on the server (imported = run)

    study = serializers.ChoiceField(choices=list(STUDY_KINDS))
    symbols = serializers.ListField(
        child=serializers.CharField(max_length=32), min_length=1, max_length=MAX_SYMBOLS
    )
    timeframe = serializers.ChoiceField(choices=[t.value for t in Timeframe], default="1h")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    source = serializers.ChoiceField(choices=DATA_SOURCES, default="database")
    plant_pairs = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=10,
        help_text="source sim: FOLLOWER:LEADER[:BETA[:HALF_LIFE_H[:SIGMA]]] pairs to plant",
    )  # fmt: skip
    alpha = serializers.FloatField(min_value=1e-6, max_value=0.5, default=0.01)
    correction = serializers.ChoiceField(choices=list(CORRECTIONS), default="bh")
    holdout = serializers.FloatField(min_value=0.0, max_value=0.9, default=0.3)
    entry = serializers.FloatField(min_value=0.1, max_value=10.0, default=2.0)
    exit = serializers.FloatField(min_value=0.0, max_value=10.0, default=0.5)
    horizons = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=10_000),
        min_length=1, max_length=20, default=[1, 5, 20],
    )  # fmt: skip
    candles = serializers.BooleanField(default=True)
    overlap = serializers.ChoiceField(choices=list(OVERLAP_METHODS), default="thin")
    interval = serializers.CharField(max_length=16, default="1min")
    levels = serializers.IntegerField(min_value=1, max_value=100, default=5)
    permutations = serializers.IntegerField(min_value=1, max_value=10_000, default=200)
    strategy = serializers.CharField(max_length=64, required=False)
    space = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=20
    )
    blocks = serializers.IntegerField(min_value=2, max_value=32, default=16)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)


class ResearchQueuedSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The run (or finding) queued")
    status = serializers.CharField()
    task = serializers.CharField(help_text="The django-q2 task id")


class FindingBacktestRequestSerializer(serializers.Serializer):
    """The backtest window of a finding's strategy (default: its study's period)."""

    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
