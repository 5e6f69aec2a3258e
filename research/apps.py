from django.apps import AppConfig


class ResearchConfig(AppConfig):
    """Django app config for research."""

    name = "research"
    verbose_name = "Research"
