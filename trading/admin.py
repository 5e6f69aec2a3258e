"""Admin for trading: accounts (halt/resume, cancel orders, inline risk limits), orders, fills."""

from django.contrib import admin, messages

from monitoring.services import audit_record, model_state
from risk.choices import TradingStateChoice
from risk.models import RiskLimit
from risk.services import trading_state_set
from rrr_site.admin_base import AuditedModelAdmin, ReadOnlyModelAdmin
from trading.admin_orders import accounts_flatten, positions_close, submit_order_view
from trading.models import Account, Fill, Order, PortfolioSnapshot, Position, StrategyConfig
from trading.services import orders_cancel, orders_cancel_open


class RiskLimitInline(admin.TabularInline):
    """Per-account limits, edited in place; saves are audited by ``AccountAdmin``."""

    model = RiskLimit
    fk_name = "account"
    extra = 0
    fields = ["scope", "kind", "value", "action", "enabled", "scope_value", "description"]


@admin.register(Account)
class AccountAdmin(AuditedModelAdmin):
    audit_action = "account"
    list_display = [
        "name",
        "mode",
        "venue",
        "base_currency",
        "cash",
        "initial_capital",
        "trading_state_display",
        "created_at",
    ]
    list_filter = ["mode", "venue"]
    search_fields = ["name"]
    filter_horizontal = ["members"]
    inlines = [RiskLimitInline]
    actions = ["halt_trading", "resume_trading", "cancel_open_orders", "flatten"]

    def get_urls(self):
        """Add the halt/resume buttons' endpoints (POST only)."""
        from django.urls import path

        own = [
            path(
                "<int:pk>/halt/",
                self.admin_site.admin_view(self._halt_view),
                name="trading_account_halt",
            ),
            path(
                "<int:pk>/resume/",
                self.admin_site.admin_view(self._resume_view),
                name="trading_account_resume",
            ),
            path(
                "<int:pk>/submit-order/",
                self.admin_site.admin_view(self._submit_order_view),
                name="trading_account_submit_order",
            ),
        ]
        return own + super().get_urls()

    def _set_state_view(self, request, pk: int, state: str, verb: str):
        from django.http import HttpResponseNotAllowed
        from django.shortcuts import get_object_or_404, redirect

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        account = get_object_or_404(Account, pk=pk)
        if not self.has_change_permission(request, account):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        trading_state_set(
            account=account,
            state=state,
            reason=f"{verb} from admin by {request.user}",
            actor=request.user,
        )
        self.message_user(request, f"{account.name}: trading {verb}.")
        return redirect("admin:trading_account_change", pk)

    def _submit_order_view(self, request, pk: int):
        return submit_order_view(self, request, pk)

    def _halt_view(self, request, pk: int):
        return self._set_state_view(request, pk, TradingStateChoice.HALTED, "halted")

    def _resume_view(self, request, pk: int):
        return self._set_state_view(request, pk, TradingStateChoice.ACTIVE, "resumed")

    def get_readonly_fields(self, request, obj=None):
        """Cash and capital are engine-owned once the account exists."""
        return ["cash", "initial_capital"] if obj else []

    @admin.display(description="State")
    def trading_state_display(self, obj: Account) -> str:
        """Show the account's trading state."""
        state = getattr(obj, "trading_state", None)
        return state.state if state else TradingStateChoice.ACTIVE

    def save_model(self, request, obj, form, change):
        """New accounts start with their initial capital in cash."""
        if not change:
            obj.cash = obj.initial_capital
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        """Audit every inline risk-limit create, update and delete."""
        before = {
            f.instance.pk: model_state(RiskLimit.objects.get(pk=f.instance.pk))
            for f in formset.forms
            if f.instance.pk and f.has_changed()
        }
        deleted = (
            [model_state(o) for o in formset.deleted_objects]
            if hasattr(formset, "deleted_objects")
            else []
        )
        super().save_formset(request, form, formset, change)
        for instance in formset.new_objects + [o for o, _ in formset.changed_objects]:
            audit_record(
                actor=request.user,
                action="risk_limit.inline_save",
                obj=instance,
                before=before.get(instance.pk),
                after=model_state(instance),
            )
        for obj, state in zip(formset.deleted_objects, deleted, strict=False):
            audit_record(
                actor=request.user, action="risk_limit.delete", obj=obj, before=state, after=None
            )

    @admin.action(description="Halt trading (no new orders)")
    def halt_trading(self, request, queryset):
        """Halt the selected accounts."""
        for account in queryset:
            trading_state_set(
                account=account,
                state=TradingStateChoice.HALTED,
                reason=f"halted from admin by {request.user}",
                actor=request.user,
            )
        self.message_user(request, f"Halted {queryset.count()} account(s).", messages.WARNING)

    @admin.action(description="Resume trading")
    def resume_trading(self, request, queryset):
        """Return the selected accounts to active."""
        for account in queryset:
            trading_state_set(
                account=account,
                state=TradingStateChoice.ACTIVE,
                reason=f"resumed from admin by {request.user}",
                actor=request.user,
            )
        self.message_user(request, f"Resumed {queryset.count()} account(s).")

    @admin.action(description="Cancel all open orders")
    def cancel_open_orders(self, request, queryset):
        """Cancel every working order of the selected accounts."""
        total = sum(orders_cancel_open(account=a, actor=request.user) for a in queryset)
        self.message_user(request, f"Cancelled {total} open order(s).")

    @admin.action(description="Flatten: cancel open orders and close every position")
    def flatten(self, request, queryset):
        """Flatten the selected accounts (audited)."""
        accounts_flatten(self, request, queryset)


@admin.register(StrategyConfig)
class StrategyConfigAdmin(AuditedModelAdmin):
    audit_action = "strategy_config"
    list_display = ["name", "strategy_class", "timeframe", "account", "enabled", "updated_at"]
    list_filter = ["enabled", "strategy_class", "timeframe"]
    search_fields = ["name", "strategy_class"]


@admin.register(Order)
class OrderAdmin(ReadOnlyModelAdmin):
    list_display = [
        "created_at",
        "account",
        "symbol",
        "side",
        "type",
        "quantity",
        "price",
        "status",
        "filled_quantity",
        "average_fill_price",
        "strategy",
    ]
    list_filter = ["status", "side", "type", "time_in_force", "account"]
    search_fields = ["client_order_id", "venue_order_id", "symbol__name", "strategy"]
    date_hierarchy = "created_at"
    actions = ["cancel_selected"]

    @admin.action(description="Cancel selected open orders")
    def cancel_selected(self, request, queryset):
        """Cancel the selected working orders, account by account."""
        total = orders_cancel(
            order_ids=list(queryset.values_list("pk", flat=True)),
            actor=request.user,
            reason=f"admin selection by {request.user}",
        )
        self.message_user(request, f"Cancelled {total} open order(s).")


@admin.register(Fill)
class FillAdmin(ReadOnlyModelAdmin):
    list_display = ["ts", "account", "symbol", "side", "quantity", "price", "fee", "liquidity"]
    list_filter = ["liquidity", "side", "account"]
    search_fields = ["venue_trade_id", "symbol__name", "order__client_order_id"]
    date_hierarchy = "ts"


@admin.register(Position)
class PositionAdmin(ReadOnlyModelAdmin):
    list_display = [
        "account",
        "symbol",
        "quantity",
        "average_price",
        "mark_price",
        "realized_pnl",
        "unrealized_pnl",
        "updated_at",
    ]
    list_filter = ["account"]
    search_fields = ["symbol__name"]
    date_hierarchy = "updated_at"
    actions = ["close_selected"]

    @admin.action(description="Close selected positions (reduce-only market orders)")
    def close_selected(self, request, queryset):
        """Submit an order closing each selected position (audited)."""
        positions_close(self, request, queryset)


@admin.register(PortfolioSnapshot)
class PortfolioSnapshotAdmin(ReadOnlyModelAdmin):
    list_display = ["ts", "account", "equity", "cash", "total_pnl", "daily_pnl", "drawdown"]
    list_filter = ["account"]
    date_hierarchy = "ts"
