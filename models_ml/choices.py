"""Enumerations for ML models and optimisation."""

from django.db import models


class ModelType(models.TextChoices):
    """Network or estimator family."""

    TRANSFORMER = "transformer"
    LSTM = "lstm"
    CNN = "cnn"
    LOGISTIC = "logistic"
    OTHER = "other"


class PredictionKind(models.TextChoices):
    """What a prediction estimates."""

    PRICE = "price"
    DIRECTION = "direction"
    RETURN = "return"
    VOLATILITY = "volatility"


class RunStatus(models.TextChoices):
    """Lifecycle of a long-running job (training, optimisation, backtest, research)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OptimizationKind(models.TextChoices):
    """Quantum or classical optimiser."""

    QAOA = "qaoa"
    VQE = "vqe"
    ANNEALING = "annealing"
    CLASSICAL = "classical"
