"""Reading this process's Prometheus series in tests."""

from __future__ import annotations

from prometheus_client import REGISTRY


def by_symbol(name: str, source: str) -> dict[str, float]:
    """Return the samples ``name`` of feed ``source``, by their ``symbol`` label."""
    return {
        s.labels["symbol"]: s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == name and s.labels.get("source") == source
    }
