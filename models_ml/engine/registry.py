"""Model artifacts on disk: save a trained network with everything inference needs, load it back.

Layout of an artifact directory::

    weights.pt     torch state_dict (loaded with weights_only=True)
    config.json    kind, hyperparameters, window, horizon, return scale, feature definition,
                   SHA-256 of weights.pt, free-form metadata
    scaler.json    per-feature mean and scale (JSON floats round-trip exactly)
    features.json  ordered feature names

Saving writes into a temporary sibling directory and renames it into place, so a crash never
leaves a half-written artifact under the final name. Loading refuses weights whose SHA-256 differs
from the recorded one and a feature definition whose names no longer match the saved list.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models_ml.engine.datasets import StandardScaler
from models_ml.engine.errors import ArtifactError, ChecksumMismatchError
from models_ml.engine.features import FeatureSet
from models_ml.engine.networks import build_network

FORMAT_VERSION = 1
WEIGHTS = "weights.pt"
CONFIG = "config.json"
SCALER = "scaler.json"
FEATURES = "features.json"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Everything except the weights that defines a trained model."""

    kind: str
    hparams: dict[str, Any]
    feature_set: FeatureSet
    window: int
    horizon: int
    return_scale: float
    scaler: StandardScaler
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Return the ordered feature names."""
        return self.feature_set.names


@dataclass(frozen=True, slots=True)
class ModelArtifact:
    """A loaded artifact: its spec, the network (eval mode) and the verified weights checksum."""

    spec: ModelSpec
    network: nn.Module
    checksum: str
    path: Path


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_artifact(
    directory: str | os.PathLike[str],
    network: nn.Module,
    spec: ModelSpec,
    *,
    overwrite: bool = False,
) -> str:
    """Write the artifact to ``directory`` and return the weights' SHA-256."""
    target = Path(directory)
    if target.exists() and not overwrite:
        raise ArtifactError(f"{target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
        torch.save(state, staging / WEIGHTS)
        checksum = sha256_file(staging / WEIGHTS)
        _write_json(staging / CONFIG, _config_dict(spec, checksum))
        _write_json(staging / SCALER, spec.scaler.to_dict())
        _write_json(staging / FEATURES, list(spec.feature_names))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return checksum


def _config_dict(spec: ModelSpec, checksum: str) -> dict[str, Any]:
    """Return the JSON content of config.json."""
    return {
        "format_version": FORMAT_VERSION,
        "kind": spec.kind,
        "hparams": spec.hparams,
        "n_features": len(spec.feature_names),
        "window": spec.window,
        "horizon": spec.horizon,
        "return_scale": spec.return_scale,
        "feature_set": spec.feature_set.to_dict(),
        "weights_sha256": checksum,
        "metadata": spec.metadata,
    }


def _write_json(path: Path, data: Any) -> None:
    """Write data as indented JSON (NaN is rejected: artifacts must be valid JSON)."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _read_json(path: Path) -> Any:
    """Read one JSON file of an artifact."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ArtifactError(f"artifact file missing: {path}") from exc
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"artifact file is not valid JSON: {path}: {exc}") from exc


def load_spec(directory: str | os.PathLike[str]) -> tuple[ModelSpec, str]:
    """Return the spec of an artifact and its recorded weights checksum (weights not read)."""
    root = Path(directory)
    config = _read_json(root / CONFIG)
    if config.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"unsupported artifact format {config.get('format_version')!r}")
    feature_set = FeatureSet.from_dict(config["feature_set"])
    saved_names = tuple(_read_json(root / FEATURES))
    if saved_names != feature_set.names or config["n_features"] != len(saved_names):
        raise ArtifactError("feature definition no longer produces the saved feature list")
    spec = ModelSpec(
        kind=config["kind"],
        hparams=dict(config["hparams"]),
        feature_set=feature_set,
        window=int(config["window"]),
        horizon=int(config["horizon"]),
        return_scale=float(config["return_scale"]),
        scaler=StandardScaler.from_dict(_read_json(root / SCALER)),
        metadata=dict(config.get("metadata", {})),
    )
    return spec, str(config["weights_sha256"])


def load_artifact(directory: str | os.PathLike[str], device: str = "cpu") -> ModelArtifact:
    """Load and verify an artifact; the network comes back in eval mode on ``device``."""
    root = Path(directory)
    spec, expected = load_spec(root)
    weights = root / WEIGHTS
    if not weights.is_file():
        raise ArtifactError(f"artifact file missing: {weights}")
    actual = sha256_file(weights)
    if actual != expected:
        raise ChecksumMismatchError(f"{weights}: sha256 {actual} != recorded {expected}")
    state = torch.load(weights, map_location=device, weights_only=True)
    network = build_network(spec.kind, len(spec.feature_names), device=device, **spec.hparams)
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(f"weights do not fit a {spec.kind} network: {exc}") from exc
    network.eval()
    return ModelArtifact(spec, network, actual, root)
