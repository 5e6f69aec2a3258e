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


# Components running in this process (a ``runtrader`` engine, say) report here; the health
# endpoints of the same process read them. Each probe returns (ok, detail) and must not block.
_COMPONENTS: dict[str, Callable[[], tuple[bool, str]]] = {}


def component_register(name: str, probe: Callable[[], tuple[bool, str]]) -> None:
    """Make ``probe`` part of this process's health under ``name``."""
    _COMPONENTS[name] = probe


def component_unregister(name: str) -> None:
    """Remove a component (it stopped)."""
    _COMPONENTS.pop(name, None)


def component_checks() -> dict[str, Callable[[], str]]:
    """Return the registered components as checks: a probe that says not ok fails its check."""

    def check_of(probe: Callable[[], tuple[bool, str]]) -> Callable[[], str]:
        def check() -> str:
            ok, detail = probe()
            if not ok:
                raise ComponentDegraded(detail)
            return detail

        return check

    return {name: check_of(probe) for name, probe in list(_COMPONENTS.items())}


class ComponentDegraded(Exception):
    """A registered component reports that it is not healthy."""
