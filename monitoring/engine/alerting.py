"""Alert routing decisions, pure: which rules match an event, dedup, rate limits, escalation.

No Django here: the service (``monitoring.alerts``) loads rules and open alerts, asks these
functions what to do, and writes the outcome. Every decision takes ``now`` (an injected clock).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import Enum

SEVERITIES = ("debug", "info", "warning", "error", "critical")


def severity_rank(severity: str) -> int:
    """Return the rank of ``severity`` (an unknown one counts as warning)."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else SEVERITIES.index("warning")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """Something worth telling people about."""

    source: str
    kind: str
    severity: str
    message: str
    account: str = ""
    symbol: str = ""


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What an ``AlertRule`` matches; blank fields (and source ``*``) match anything."""

    id: int
    source: str
    kind: str
    min_severity: str
    account: str
    symbol: str

    def matches(self, event: AlertEvent) -> bool:
        """Return True if ``event`` falls under this rule."""
        return (
            self.source in ("*", "", event.source)
            and self.kind in ("", event.kind)
            and self.account in ("", event.account)
            and self.symbol in ("", event.symbol)
            and severity_rank(event.severity) >= severity_rank(self.min_severity)
        )


def matching_rules(rules: Iterable[RuleSpec], event: AlertEvent) -> list[RuleSpec]:
    """Return the rules that route ``event``."""
    return [rule for rule in rules if rule.matches(event)]


def fingerprint(rule_id: int, event: AlertEvent) -> str:
    """Return what makes two events 'the same alert' for a rule: kind, account and symbol.

    The message is left out on purpose: it carries figures that change from one repeat to the
    next (a drawdown of 20.1 % then 20.3 % is one ongoing alert).
    """
    key = f"{rule_id}|{event.source}|{event.kind}|{event.account}|{event.symbol}"
    return hashlib.sha256(key.encode()).hexdigest()[:40]


class Action(Enum):
    """What to do with an event that matched a rule."""

    SEND = "send"  # a new alert, or a repeat after the cooldown: deliver it
    COUNT = "count"  # a repeat within the cooldown: count it into the open alert, send nothing
    RATE_LIMITED = "rate_limited"  # would be sent, but the rule sent its hourly maximum


def decide(
    *,
    now: datetime,
    last_sent_at: datetime | None,
    cooldown_seconds: int,
    sent_last_hour: int,
    max_per_hour: int,
) -> Action:
    """Decide whether an event is delivered, counted into its open alert, or rate limited."""
    if last_sent_at is not None and now - last_sent_at < timedelta(seconds=cooldown_seconds):
        return Action.COUNT
    if max_per_hour and sent_last_hour >= max_per_hour:
        return Action.RATE_LIMITED
    return Action.SEND


def escalation_due(
    *,
    now: datetime,
    severity: str,
    state: str,
    first_seen: datetime,
    escalated_at: datetime | None,
    escalate_after_minutes: int | None,
) -> bool:
    """Return True if an unacknowledged critical alert has waited long enough to escalate."""
    return (
        escalate_after_minutes is not None
        and severity == "critical"
        and state == "open"
        and escalated_at is None
        and now - first_seen >= timedelta(minutes=escalate_after_minutes)
    )


def render(
    event_kind: str,
    severity: str,
    message: str,
    occurrences: int,
    context: dict,
    escalation: bool = False,
) -> tuple[str, str]:
    """Return (title, body) of an alert message."""
    head = "ESCALATED " if escalation else ""
    title = f"[RRR {head}{severity.upper()}] {event_kind}"
    lines = [message]
    if occurrences > 1:
        lines.append(f"(seen {occurrences} times)")
    for key in sorted(context)[:12]:
        lines.append(f"{key}: {money_for_humans(key, context[key])}")
    return title, "\n".join(lines)


# Context keys whose values are amounts of the account's currency (USD): shown to 2 places.
MONEY_KEY = re.compile(r"(^|_)(equity|cash|pnl|notional|exposure|balance|var|cvar|peak)($|_)")
CENT = Decimal("0.01")


def money_for_humans(key: str, value: object) -> object:
    """Return ``value`` to the cent when ``key`` names an amount of money, else unchanged.

    The engine keeps full precision (``99950.01172314000000000000000``); a person reading an
    alert wants ``99950.01``. Only the text is rounded: the stored context keeps every digit.
    """
    if not MONEY_KEY.search(key.lower()) or isinstance(value, bool):
        return value
    try:
        amount = Decimal(str(value)) if isinstance(value, str | int | float | Decimal) else None
    except InvalidOperation:
        return value
    if amount is None or not amount.is_finite():
        return value
    return f"{amount.quantize(CENT, rounding=ROUND_HALF_EVEN):f}"


def counts_in_window(times: Sequence[datetime], now: datetime, seconds: float) -> int:
    """Return how many of ``times`` fall within the last ``seconds`` before ``now``."""
    start = now - timedelta(seconds=seconds)
    return sum(1 for t in times if start < t <= now)
