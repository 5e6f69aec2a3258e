"""The admin: every page a superuser opens answers; operator actions are audited."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib import admin
from django.urls import reverse

from models_ml.models import MLModel
from monitoring.models import AuditLog
from risk.models import RiskLimit, TradingState
from rrr_site.admin_base import ReadOnlyModelAdmin
from tests.factories import (
    AccountFactory,
    BarFactory,
    MLModelFactory,
    OrderFactory,
    RiskLimitFactory,
)
from trading.models import Order

pytestmark = pytest.mark.django_db
REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


@pytest.mark.parametrize("model,model_admin", REGISTERED, ids=lambda v: getattr(v, "__name__", ""))
def test_changelist_and_add_pages(admin_client, admin_user, rf, model, model_admin):
    BarFactory()
    OrderFactory()
    meta = model._meta
    changelist = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert changelist.status_code == 200
    add = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add"))
    request = rf.get("/")
    request.user = admin_user
    addable = model_admin.has_add_permission(request)
    # django-q2's and simplejwt's own admins (issued/blacklisted tokens) are not ours to change.
    theirs = meta.app_label in {"django_q", "token_blacklist"}
    assert addable or isinstance(model_admin, ReadOnlyModelAdmin) or theirs
    assert add.status_code == (200 if addable else 403)


def test_market_data_and_audit_log_are_read_only():
    from marketdata.models import Bar, TradeTick

    for model in (Bar, TradeTick, AuditLog):
        model_admin = admin.site._registry[model]
        assert not model_admin.has_change_permission(None)
        assert not model_admin.has_delete_permission(None)


def post_action(client, model, action: str, ids: list) -> None:
    """Run an admin action on the given primary keys."""
    meta = model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    response = client.post(url, {"action": action, "_selected_action": [str(i) for i in ids]})
    assert response.status_code == 302, response.content[:500]


def test_activate_model_deactivates_siblings_and_audits(admin_client):
    old = MLModelFactory(name="btc", version=1, active=True)
    new = MLModelFactory(name="btc", version=2)
    post_action(admin_client, MLModel, "activate", [new.pk])
    old.refresh_from_db()
    new.refresh_from_db()
    assert new.active and not old.active
    actions = set(AuditLog.objects.values_list("action", "object_id"))
    assert ("ml_model.activate", str(new.pk)) in actions
    assert ("ml_model.deactivate", str(old.pk)) in actions
    entry = AuditLog.objects.get(action="ml_model.activate")
    assert entry.actor_repr == "root-admin" and entry.before == {"active": False}


def test_disable_and_enable_risk_limits_are_audited(admin_client):
    limit = RiskLimitFactory()
    post_action(admin_client, RiskLimit, "disable_limits", [limit.pk])
    limit.refresh_from_db()
    assert not limit.enabled
    entry = AuditLog.objects.get(action="risk_limit.update")
    assert entry.before["enabled"] is True and entry.after["enabled"] is False
    post_action(admin_client, RiskLimit, "enable_limits", [limit.pk])
    limit.refresh_from_db()
    assert limit.enabled and AuditLog.objects.filter(action="risk_limit.update").count() == 2


def test_editing_a_risk_limit_in_the_admin_is_audited(admin_client):
    limit = RiskLimitFactory(value=Decimal("10000"))
    url = reverse("admin:risk_risklimit_change", args=[limit.pk])
    data = {
        "scope": "global",
        "scope_value": "",
        "kind": limit.kind,
        "value": "2500",
        "action": "reject",
        "enabled": "on",
        "description": "tightened",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:800]
    entry = AuditLog.objects.get(action="risk_limit.update", object_id=str(limit.pk))
    assert Decimal(entry.before["value"]) == 10000 and Decimal(entry.after["value"]) == 2500


def test_halt_and_resume_account_are_audited(admin_client):
    from trading.models import Account

    account = AccountFactory()
    post_action(admin_client, Account, "halt_trading", [account.pk])
    assert TradingState.objects.get(account=account).state == "halted"
    post_action(admin_client, Account, "resume_trading", [account.pk])
    assert TradingState.objects.get(account=account).state == "active"
    rows = AuditLog.objects.filter(action="trading_state.set").order_by("at", "id")
    assert [(r.before["state"], r.after["state"]) for r in rows] == [
        ("active", "halted"),
        ("halted", "active"),
    ]


def test_cancel_open_orders_action(admin_client):
    from trading.models import Account

    account = AccountFactory()
    working = OrderFactory(account=account, status="open")
    done = OrderFactory(account=account, status="filled", filled_quantity=Decimal("0.5"))
    post_action(admin_client, Account, "cancel_open_orders", [account.pk])
    assert Order.objects.get(pk=working.pk).status == "cancelled"
    assert Order.objects.get(pk=done.pk).status == "filled"
    assert AuditLog.objects.filter(action="order.cancel", object_id=str(working.pk)).exists()


def test_halt_and_resume_buttons_on_the_account_page(admin_client):
    account = AccountFactory()
    page = admin_client.get(reverse("admin:trading_account_change", args=[account.pk]))
    assert b"Halt trading" in page.content and b"Resume trading" in page.content
    assert (
        admin_client.get(reverse("admin:trading_account_halt", args=[account.pk])).status_code
        == 405
    )
    response = admin_client.post(reverse("admin:trading_account_halt", args=[account.pk]))
    assert response.status_code == 302
    assert TradingState.objects.get(account=account).state == "halted"
    admin_client.post(reverse("admin:trading_account_resume", args=[account.pk]))
    assert TradingState.objects.get(account=account).state == "active"
    assert AuditLog.objects.filter(action="trading_state.set").count() == 2
