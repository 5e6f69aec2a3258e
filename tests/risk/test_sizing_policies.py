"""Sizing policies in the database: constraints, and a running engine reloads them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from monitoring.models import AuditLog
from risk.models import SizingPolicy
from trading.runtime_control import RuntimeControl

pytestmark = pytest.mark.django_db


def test_the_control_poll_reloads_sizing_policies_when_they_change(paper) -> None:
    control = RuntimeControl(paper.name, timeframe="1m")
    first = control.poll(force=True).sizer
    assert first is not None and first.default.fraction is None  # no policy: strategy's own
    assert control.poll().sizer is None  # unchanged
    row = SizingPolicy.objects.create(
        account=paper, method="volatility_target", fraction=Decimal("0.3"), lookback=30
    )
    reloaded = control.poll().sizer
    assert reloaded.default.method == "volatility_target" and reloaded.default.lookback == 30
    assert reloaded.periods_per_year == Decimal(525600)  # 1m bars in a year
    row.enabled = False
    row.save()
    assert control.poll().sizer.default.method == "fixed_fraction"


def test_the_database_refuses_policies_no_order_could_be_sized_by(paper) -> None:
    for bad in ({"fraction": Decimal("0")}, {"lookback": 1}, {"target_volatility": 0}):
        with pytest.raises(IntegrityError), transaction.atomic():
            SizingPolicy.objects.create(account=paper, **bad)
    SizingPolicy.objects.create(account=paper)
    with pytest.raises(IntegrityError), transaction.atomic():
        SizingPolicy.objects.create(account=paper)  # one default per account


def test_the_admin_lists_and_edits_sizing_policies(admin_client, paper) -> None:
    row = SizingPolicy.objects.create(account=paper, strategy="sma_cross")
    assert admin_client.get("/admin/risk/sizingpolicy/").status_code == 200
    page = admin_client.get(f"/admin/risk/sizingpolicy/{row.pk}/change/")
    assert page.status_code == 200 and b"Volatility target" in page.content
    response = admin_client.post(
        f"/admin/risk/sizingpolicy/{row.pk}/change/",
        {
            "account": paper.pk,
            "strategy": "sma_cross",
            "method": "kelly",
            "fraction": "0.15",
            "target_volatility": "0.2",
            "lookback": "90",
            "kelly_multiplier": "0.5",
            "enabled": "on",
            "description": "",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    row.refresh_from_db()
    assert (row.method, row.fraction, row.lookback) == ("kelly", Decimal("0.15"), 90)
    assert AuditLog.objects.filter(action="sizing_policy.update").exists()
