"""Sizing policies in the database: constraints, and a running engine reloads them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from risk.models import SizingPolicy
from trading.runtime_control import RuntimeControl

pytestmark = pytest.mark.django_db


def test_the_control_poll_reloads_sizing_policies_when_they_change(paper) -> None:
    control = RuntimeControl(paper.name, timeframe="1m")
    first = control.poll(force=True).sizer
    assert first is not None and first.default.fraction is None  # no policy: strategy's own
    assert control.poll().sizer is None  # unchanged
    row = SizingPolicy.objects.create(account=paper, method="volatility_target",
                                      fraction=Decimal("0.3"), lookback=30)
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
