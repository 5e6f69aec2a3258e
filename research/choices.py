"""Enumerations for research."""

from django.db import models

from models_ml.choices import RunStatus  # noqa: F401 - shared lifecycle


class ResearchKind(models.TextChoices):
    """Kinds of research study."""

    STAT_ARB = "stat_arb"
    ORDER_FLOW = "order_flow"
    PATTERN = "pattern"
    HYPOTHESIS = "hypothesis"


# The studies the ``research`` command and the API run, and the kind each stores.
STUDY_KINDS = {
    "pairs": ResearchKind.STAT_ARB,
    "microstructure": ResearchKind.ORDER_FLOW,
    "patterns": ResearchKind.PATTERN,
    "overfitting": ResearchKind.HYPOTHESIS,
}
