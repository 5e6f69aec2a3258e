"""Enumerations for backtesting."""

from django.db import models

from models_ml.choices import RunStatus  # noqa: F401 - shared lifecycle


class FillModel(models.TextChoices):
    """How backtest orders fill."""

    NEXT_OPEN = "next_open"
    CLOSE = "close"
    BOOK = "book"


class OptimizeMethod(models.TextChoices):
    """Parameter search methods."""

    NONE = ""
    GRID = "grid"
    RANDOM = "random"
    GENETIC = "genetic"
    WALKFORWARD = "walkforward"
