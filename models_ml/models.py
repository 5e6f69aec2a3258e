"""ML registry: model versions (one active per name), training runs, predictions, optimisations."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from marketdata.models import Symbol
from models_ml.choices import ModelType, OptimizationKind, PredictionKind, RunStatus


class MLModel(models.Model):
    """A trained model version with its artifact, metrics and configuration."""

    name = models.CharField(max_length=64)
    model_type = models.CharField(max_length=16, choices=ModelType.choices)
    version = models.PositiveIntegerField()
    artifact_path = models.CharField(max_length=500, blank=True)
    checksum = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the weights")
    metrics = models.JSONField(default=dict, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    feature_names = models.JSONField(default=list, blank=True)
    symbols = models.JSONField(default=list, blank=True)
    timeframe = models.CharField(max_length=4, default="1m")
    trained_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="mlmodel_name_version"),
            models.UniqueConstraint(
                fields=["name"], condition=Q(active=True), name="mlmodel_one_active_per_name"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}{' (active)' if self.active else ''}"


class TrainingRun(models.Model):
    """One training job: configuration, per-epoch and per-fold metrics, outcome."""

    model = models.ForeignKey(
        MLModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    model_type = models.CharField(max_length=16, choices=ModelType.choices)
    params = models.JSONField(default=dict, blank=True)
    symbols = models.JSONField(default=list, blank=True)
    timeframe = models.CharField(max_length=4, default="1m")
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    progress = models.FloatField(default=0.0)
    epochs = models.JSONField(default=list, blank=True, help_text="Per-epoch metrics")
    fold_metrics = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress__gte=0, progress__lte=1), name="trainingrun_progress_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_type} training #{self.pk} [{self.status}]"


class Prediction(models.Model):
    """A model's output for a symbol at a bar time, with confidence and the feature vector used."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="predictions")
    symbol = models.ForeignKey(Symbol, on_delete=models.CASCADE, related_name="predictions")
    ts = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=PredictionKind.choices)
    horizon = models.PositiveIntegerField(default=1, help_text="Bars ahead")
    value = models.FloatField()
    confidence = models.FloatField(default=0.0)
    features = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-ts"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "symbol", "ts", "kind", "horizon"], name="prediction_unique"
            ),
            models.CheckConstraint(
                condition=Q(confidence__gte=0, confidence__lte=1),
                name="prediction_confidence_range",
            ),
        ]
        indexes = [
            models.Index(fields=["symbol", "-ts"], name="prediction_symbol_ts"),
            # The API's decision list: newest first over every symbol, by (ts, id) keyset pages.
            models.Index(fields=["-ts", "-id"], name="prediction_ts_id"),
        ]

    def __str__(self) -> str:
        return f"{self.model_id} {self.symbol_id} {self.kind}={self.value:.4f}"


class OptimizationRun(models.Model):
    """A portfolio/feature optimisation (quantum or classical) beside the classical optimum."""

    kind = models.CharField(max_length=16, choices=OptimizationKind.choices)
    problem = models.CharField(max_length=32, default="portfolio")
    inputs = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    objective = models.FloatField(null=True, blank=True)
    classical_objective = models.FloatField(null=True, blank=True)
    approximation_ratio = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    timing = models.JSONField(default=dict, blank=True, help_text="Seconds per phase")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.problem} #{self.pk} [{self.status}]"
