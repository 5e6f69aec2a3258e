"""Manual orders from the admin: submit an order, close positions, flatten accounts.

Every path calls the trading services the API uses (``order_submit``, ``position_close``,
``account_flatten``), which validate with the engine's rules, store the order ``pending`` for the
account's ``runtrader`` to risk-check and send, and audit each order and cancellation with the
operator as actor; flattening an account is audited once more as ``account.flatten``.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from marketdata.models import Symbol
from monitoring.services import audit_record
from trading.api.order_serializers import PLAIN_DECIMAL
from trading.choices import OrderSide, OrderType, TimeInForce
from trading.engine.errors import OrderRejected
from trading.models import Account
from trading.services import account_flatten, order_submit, position_close

MANUAL_STRATEGY = "manual"


class PlainDecimalFormField(forms.DecimalField):
    """A decimal in plain ASCII digits, as the API reads one (``PLAIN_DECIMAL``): Python's
    Decimal also takes "1_0" as 10 and other scripts' digits."""

    def to_python(self, value):
        if isinstance(value, str) and value.strip() and not PLAIN_DECIMAL.fullmatch(value):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class ManualOrderForm(forms.Form):
    """One order, in the fields ``order_submit`` takes."""

    symbol = forms.ModelChoiceField(
        queryset=Symbol.objects.filter(active=True).order_by("name"), to_field_name="name"
    )
    side = forms.ChoiceField(choices=OrderSide.choices)
    quantity = PlainDecimalFormField(max_digits=28, decimal_places=10, min_value=Decimal("1e-10"))
    type = forms.ChoiceField(choices=OrderType.choices, initial=OrderType.MARKET)
    price = PlainDecimalFormField(
        max_digits=28, decimal_places=10, required=False, help_text="Limit price"
    )
    stop_price = PlainDecimalFormField(
        max_digits=28, decimal_places=10, required=False, help_text="Trigger price"
    )
    trail_percent = PlainDecimalFormField(
        max_digits=28, decimal_places=10, required=False, help_text="Trailing stop, in percent"
    )
    time_in_force = forms.ChoiceField(choices=TimeInForce.choices, initial=TimeInForce.GTC)
    reduce_only = forms.BooleanField(required=False)
    algo = forms.ChoiceField(
        choices=[("", "none (one order)"), ("twap", "TWAP"), ("vwap", "VWAP")],
        required=False,
        help_text="Work a market order in children over the duration",
    )
    duration = forms.IntegerField(required=False, min_value=1, help_text="Algo: seconds")
    slices = forms.IntegerField(required=False, min_value=1, max_value=10_000)


def submit_order_view(model_admin, request: HttpRequest, pk: int) -> HttpResponse:
    """Show the manual order form for one account; on POST submit it through ``order_submit``."""
    account = get_object_or_404(Account, pk=pk)
    if not model_admin.has_change_permission(request, account):
        raise PermissionDenied
    form = ManualOrderForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            algo = _algo_kwargs(data)
            order = order_submit(
                account=account,
                symbol=data["symbol"].name,
                side=data["side"],
                quantity=data["quantity"],
                type=data["type"],
                price=data["price"],
                stop_price=data["stop_price"],
                trail_percent=data["trail_percent"],
                time_in_force=data["time_in_force"],
                reduce_only=data["reduce_only"],
                strategy=MANUAL_STRATEGY,
                actor=request.user,
                **algo,
            )
        except (OrderRejected, ValueError) as exc:
            form.add_error(None, f"order refused: {getattr(exc, 'reason', exc)}")
        else:
            model_admin.message_user(
                request,
                f"{account.name}: {order.side} {order.quantity} {data['symbol'].name} "
                f"({order.type}) submitted as order {order.client_order_id}; the account's "
                "runtrader risk-checks and sends it.",
            )
            return redirect("admin:trading_account_change", account.pk)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Submit an order for {account.name}",
        "account": account,
        "form": form,
        "opts": model_admin.model._meta,
    }
    return render(request, "admin/trading/account/submit_order.html", context)


def _algo_kwargs(data: dict) -> dict:
    """Return ``order_submit``'s algo keywords from the form (VWAP: the stored volume profile)."""
    if not data.get("algo"):
        return {}
    kwargs = {"algo": data["algo"], "duration": data["duration"], "slices": data["slices"]}
    if data["algo"] == "vwap":
        from trading.engine.algos import volume_profile

        slices = data["slices"] or max(1, min(60, (data["duration"] or 0) // 60))
        volumes = recent_volumes(symbol=data["symbol"].name, seconds=data["duration"] or 0)
        kwargs["slices"] = slices
        kwargs["profile"] = volume_profile(volumes, slices)
    return kwargs


def recent_volumes(*, symbol: str, seconds: int) -> list[float]:
    """Return the last ``seconds`` of stored 1m venue-bar volumes, oldest first (VWAP profile)."""
    from marketdata.models import Bar

    count = max(1, seconds // 60)
    rows = Bar.objects.filter(symbol__name=symbol, timeframe="1m", simulated=False)
    volumes = list(rows.order_by("-ts").values_list("volume", flat=True)[:count])
    return volumes[::-1]


def accounts_flatten(model_admin, request: HttpRequest, queryset) -> None:
    """Admin action: cancel every working order and close every position (audited)."""
    for account in queryset:
        orders = account_flatten(account=account, actor=request.user)
        audit_record(
            actor=request.user,
            action="account.flatten",
            obj=account,
            before=None,
            after={"closing_orders": [str(o.client_order_id) for o in orders]},
        )
        model_admin.message_user(
            request,
            f"{account.name}: open orders cancelled, {len(orders)} closing order(s) submitted.",
            messages.WARNING,
        )


def positions_close(model_admin, request: HttpRequest, queryset) -> None:
    """Admin action: submit a reduce-only market order closing each selected position."""
    closed = 0
    for position in queryset.select_related("account", "symbol"):
        order = position_close(
            account=position.account, symbol=position.symbol.name, actor=request.user
        )
        closed += order is not None
    model_admin.message_user(request, f"{closed} closing order(s) submitted.")


__all__ = ["ManualOrderForm", "accounts_flatten", "positions_close", "submit_order_view"]
