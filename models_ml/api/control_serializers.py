"""Serializers of the model control endpoints: activation and training requests."""

from __future__ import annotations

from rest_framework import serializers

from models_ml.models import TrainingRun
from models_ml.services import TRAINABLE_TYPES


class ActivateSerializer(serializers.Serializer):
    force = serializers.BooleanField(
        default=False,
        help_text="Activate a version whose out-of-sample verdict is 'no edge' (audited as forced)",
    )


class TrainingCreateSerializer(serializers.Serializer):
    """A training request: ``manage.py train``'s inputs (``params`` as ``TrainingParams``)."""

    model_type = serializers.ChoiceField(choices=[(t, t) for t in TRAINABLE_TYPES])
    symbols = serializers.ListField(
        child=serializers.CharField(max_length=32), min_length=1, max_length=20
    )
    timeframe = serializers.CharField(max_length=4, default="1h")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    name = serializers.CharField(
        max_length=100, required=False, help_text="Model name (default: <symbol>-<model type>)"
    )
    params = serializers.DictField(
        required=False,
        help_text="epochs, folds, window, horizon, hparams, lr, seed, source ('sim' for the "
        "simulated market), feature_groups... (unknown names are refused)",
    )


class TrainingQueuedSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The training run's id")
    status = serializers.CharField()
    task = serializers.CharField(help_text="The django-q2 task id")
    status_url = serializers.CharField()


class TrainingRunSerializer(serializers.ModelSerializer):
    """A training run's state and, once done, the version it registered."""

    class Meta:
        model = TrainingRun
        fields = [
            "id", "model", "model_type", "symbols", "timeframe", "start", "end", "params",
            "status", "progress", "metrics", "error", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
