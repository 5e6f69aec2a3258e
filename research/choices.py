"""Enumerations for research."""

from django.db import models

from models_ml.choices import RunStatus  # noqa: F401 - shared lifecycle


class ResearchKind(models.TextChoices):
    """Kinds of research study."""

    STAT_ARB = "stat_arb"
    ORDER_FLOW = "order_flow"
    PATTERN = "pattern"
    HYPOTHESIS = "hypothesis"
