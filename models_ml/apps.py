from django.apps import AppConfig


class ModelsMlConfig(AppConfig):
    """Django app config for models_ml."""

    name = "models_ml"
    verbose_name = "ML models"
