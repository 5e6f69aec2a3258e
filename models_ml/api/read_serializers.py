"""Serializers of predictions and model versions."""

from __future__ import annotations

from rest_framework import serializers

from models_ml.choices import ModelType, PredictionKind
from models_ml.models import MLModel, Prediction
from rrr_site.api.pagination import KeysetQuery

MAX_ID = 2**63 - 1


class DecisionsQuery(KeysetQuery):
    model = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    model_name = serializers.CharField(max_length=64, required=False)
    symbol = serializers.CharField(max_length=32, required=False)
    kind = serializers.ChoiceField(choices=PredictionKind.choices, required=False)
    start = serializers.DateTimeField(required=False, help_text="From (inclusive)")
    end = serializers.DateTimeField(required=False, help_text="Until (exclusive)")

    def validate(self, attrs: dict) -> dict:
        if attrs.get("start") and attrs.get("end") and attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": ["Must be after start."]})
        return attrs


class ModelsQuery(KeysetQuery):
    name = serializers.CharField(max_length=64, required=False)
    active = serializers.BooleanField(required=False, allow_null=True, default=None)


class DecisionSerializer(serializers.ModelSerializer):
    model = serializers.IntegerField(source="model_id")
    model_name = serializers.CharField(source="model.name")
    model_version = serializers.IntegerField(source="model.version")
    symbol = serializers.CharField(source="symbol.name")

    class Meta:
        model = Prediction
        fields = [
            "id", "model", "model_name", "model_version", "symbol", "ts", "kind", "horizon",
            "value", "confidence",
        ]  # fmt: skip


class ModelVersionSerializer(serializers.ModelSerializer):
    """A model version: out-of-sample metrics beside the baselines, and whether it is active."""

    model_type = serializers.ChoiceField(choices=ModelType.choices)
    out_of_sample = serializers.SerializerMethodField(help_text="The model's own metrics")
    baselines = serializers.SerializerMethodField(help_text="Baselines on the same samples")
    verdict = serializers.SerializerMethodField(help_text="'edge' or 'no edge' (or null)")

    class Meta:
        model = MLModel
        fields = [
            "id", "name", "model_type", "version", "active", "symbols", "timeframe",
            "trained_at", "created_at", "checksum", "out_of_sample", "baselines", "verdict",
            "metrics",
        ]  # fmt: skip

    def _metrics(self, obj: MLModel) -> dict:
        return obj.metrics if isinstance(obj.metrics, dict) else {}

    def get_out_of_sample(self, obj: MLModel) -> dict | None:
        return self._metrics(obj).get("model")

    def get_baselines(self, obj: MLModel) -> dict | None:
        return self._metrics(obj).get("baselines")

    def get_verdict(self, obj: MLModel) -> str | None:
        return self._metrics(obj).get("verdict")
