"""Combine component checks into one readiness verdict."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one component check."""

    name: str
    ok: bool
    detail: str
    latency_ms: float


def run_checks(checks: Mapping[str, Callable[[], str]]) -> list[CheckResult]:
    """Run each check; a check passes when it returns, fails when it raises."""
    results = []
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            detail, ok = check(), True
        except Exception as exc:  # a failing dependency must be reported, not raised
            detail, ok = f"{type(exc).__name__}: {exc}", False
        results.append(CheckResult(name, ok, detail, (time.perf_counter() - started) * 1000))
    return results


def summarise(results: list[CheckResult]) -> dict:
    """Return a JSON-able readiness document."""
    return {
        "status": "ok" if all(r.ok for r in results) else "unavailable",
        "checks": {
            r.name: {"ok": r.ok, "detail": r.detail, "latency_ms": round(r.latency_ms, 2)}
            for r in results
        },
    }
