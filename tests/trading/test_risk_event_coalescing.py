"""Repeated order refusals are stored as one counted risk event per flush, so the engine's risk
queue drains at the pace of distinct events (a 50-symbol soak queued thousands a minute)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from risk.engine.events import ModeChangeRequest, RiskEventRecord, Severity
from risk.models import RiskEvent, TradingState
from trading.engine.hooks import TradingMode
from trading.runtime_control import RuntimeControl, coalesce_order_checks

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def refusal(symbol: str, n: int, *, side: str = "buy", kind: str = "max_gross_exposure_pct"):
    return RiskEventRecord(
        Severity.WARNING, kind, f"order {n} would exceed the limit",
        {"decision": "reject", "symbol": symbol, "side": side, "quantity": str(n),
         "strategy": "sma_cross"},
        "paper", T0 + timedelta(seconds=n),
    )  # fmt: skip


def test_repeats_of_one_refusal_fold_into_the_first_and_other_events_pass_through():
    breach = RiskEventRecord(Severity.CRITICAL, "max_daily_loss_pct", "daily loss", {}, "paper", T0)
    events = [refusal("BTC-USD", n) for n in range(1, 301)]
    events += [refusal("ETH-USD", 1), breach, refusal("BTC-USD", 400, side="sell")]
    out = coalesce_order_checks(events)
    assert [(e.limit_kind, e.context.get("symbol"), e.context.get("side")) for e in out] == [
        ("max_gross_exposure_pct", "BTC-USD", "buy"),
        ("max_gross_exposure_pct", "ETH-USD", "buy"),
        ("max_daily_loss_pct", None, None),
        ("max_gross_exposure_pct", "BTC-USD", "sell"),
    ]
    first = out[0]
    assert first.context["repeats"] == 300 and first.context["last_quantity"] == "300"
    assert first.ts == T0 + timedelta(seconds=1)  # stamped when it began
    assert first.context["last_ts"] == (T0 + timedelta(seconds=300)).isoformat()
    assert "(x300" in first.message
    assert "repeats" not in out[1].context and out[2] is breach


@pytest.mark.django_db(transaction=True)
def test_a_flush_stores_one_event_per_refusal_kind_and_applies_every_mode_change(paper):
    control = RuntimeControl(paper.name)
    for n in range(1, 1001):  # what a strategy asking on every bar queues while the DB lags
        control.queue_risk([refusal(f"SYM{n % 5}", n)], [])
    change = ModeChangeRequest("paper", TradingMode.REDUCING, "daily loss", "max_daily_loss", T0)
    control.queue_risk([], [change])
    control.flush_risk()
    assert not control._risk_outbox
    rows = list(RiskEvent.objects.filter(account=paper).order_by("id"))
    assert len(rows) == 5
    assert sum(r.context["repeats"] for r in rows) == 1000
    assert TradingState.objects.get(account=paper).state == "reducing"
