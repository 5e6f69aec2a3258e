"""Domain exceptions of the ML engine."""

from __future__ import annotations


class MLEngineError(Exception):
    """Base class of every models_ml engine error."""


class FeatureError(MLEngineError):
    """Input bars cannot be turned into features (missing columns, bad order, bad values)."""


class DatasetError(MLEngineError):
    """A dataset, split or scaler request is inconsistent with the data."""


class NetworkConfigError(MLEngineError):
    """A network kind or hyperparameter is unknown or out of range."""


class TrainingError(MLEngineError):
    """Training cannot proceed (no samples, bad configuration, diverged loss)."""


class ArtifactError(MLEngineError):
    """A model artifact is missing, incomplete or unreadable."""


class ChecksumMismatchError(ArtifactError):
    """The weights file does not match the checksum recorded when it was saved."""


class StaleBarError(MLEngineError):
    """A bar is not newer than the last bar seen for its symbol."""
