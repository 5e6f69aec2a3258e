"""Risk endpoints: limits (traders read, admins write), events, report, halt/pause/resume."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring.services import to_jsonable
from risk.api.serializers import (
    LimitQuery,
    ReportQuery,
    RiskEventQuery,
    RiskEventSerializer,
    RiskLimitSerializer,
    RiskLimitUpdateSerializer,
    StateChangeSerializer,
    TradingStateSerializer,
)
from risk.choices import TradingStateChoice
from risk.models import RiskEvent, RiskLimit
from risk.selectors import risk_report
from risk.services import risk_limit_update, trading_state_set
from rrr_site.api.accounts import account_or_404, visible_accounts
from rrr_site.api.pagination import keyset_page, keyset_page_serializer, keyset_response
from rrr_site.api.permissions import IsTrader, IsViewer, TraderReadsAdminWrites
from rrr_site.api.schema import ERRORS_400, read_errors
from trading.services import orders_cancel_open

_LIMIT = {
    "id": 3, "scope": "account", "account": 1, "account_name": "paper", "scope_value": "",
    "kind": "max_position_pct", "value": "0.2000000000", "action": "reduce", "enabled": True,
    "params": {}, "description": "Largest position as a fraction of equity",
    "updated_at": "2026-01-05T10:00:00Z",
}  # fmt: skip


def _limits_visible(request):
    """Return the global limits and those of the user's accounts."""
    return RiskLimit.objects.filter(
        Q(account__isnull=True) | Q(account__in=visible_accounts(request))
    ).select_related("account")


class RiskLimitListView(APIView):
    """Limits in force: global ones and your accounts' (``account`` narrows to one account's)."""

    permission_classes = [TraderReadsAdminWrites]

    @extend_schema(
        tags=["risk"],
        parameters=[LimitQuery],
        responses={200: RiskLimitSerializer(many=True), **read_errors(not_found=True)},
        examples=[OpenApiExample("limits", value=[_LIMIT], response_only=True)],
    )
    def get(self, request):
        query = LimitQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        limits = _limits_visible(request)
        if "account" in query.validated_data:
            account = account_or_404(request, query.validated_data["account"])
            limits = limits.filter(Q(account__isnull=True) | Q(account=account))
        return Response(RiskLimitSerializer(limits.order_by("id"), many=True).data)


class RiskLimitDetailView(APIView):
    """One limit; admins change it (audited as in the admin; a running engine reloads it)."""

    permission_classes = [TraderReadsAdminWrites]

    def _limit(self, request, pk: int) -> RiskLimit:
        limit = _limits_visible(request).filter(pk=pk).first()
        if limit is None:
            raise NotFound("No such limit.")
        return limit

    @extend_schema(
        tags=["risk"], responses={200: RiskLimitSerializer, **read_errors(not_found=True)}
    )
    def get(self, request, pk: int):
        return Response(RiskLimitSerializer(self._limit(request, pk)).data)

    @extend_schema(
        tags=["risk"],
        request=RiskLimitUpdateSerializer,
        responses={200: RiskLimitSerializer, **read_errors(not_found=True)},
        examples=[
            OpenApiExample("tighten", value={"value": "0.10"}, request_only=True),
            OpenApiExample("updated", value={**_LIMIT, "value": "0.1000000000"},
                           response_only=True),
        ],
    )  # fmt: skip
    def patch(self, request, pk: int):
        limit = self._limit(request, pk)
        body = RiskLimitUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            limit = risk_limit_update(limit=limit, actor=request.user, **body.validated_data)
        except DjangoValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
            raise ValidationError(errors) from None
        return Response(RiskLimitSerializer(limit).data)


class RiskEventListView(APIView):
    """Risk events of your accounts, newest first (events of no account: staff only)."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["risk"],
        parameters=[RiskEventQuery],
        responses={
            200: keyset_page_serializer("RiskEventPage", RiskEventSerializer),
            **read_errors(not_found=True),
        },
    )
    def get(self, request):
        query = RiskEventQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        events = RiskEvent.objects.filter(account__in=visible_accounts(request))
        if request.user.is_staff or request.user.is_superuser:
            events = RiskEvent.objects.all()
        if "account" in q:
            events = events.filter(account=account_or_404(request, q["account"]))
        for field in ("kind", "severity"):
            if field in q:
                events = events.filter(**{field: q[field]})
        if q.get("acknowledged") is not None:
            events = events.filter(acknowledged=q["acknowledged"])
        if "since" in q:
            events = events.filter(ts__gte=q["since"])
        if "until" in q:
            events = events.filter(ts__lt=q["until"])
        rows, cursor = keyset_page(
            events.select_related("account"), limit=q["limit"], cursor=q.get("cursor")
        )
        return keyset_response(request, RiskEventSerializer(rows, many=True).data, cursor)


_REPORT = inline_serializer(
    name="RiskReport",
    fields={
        "account": serializers.CharField(),
        "mode": serializers.CharField(),
        "state": serializers.CharField(),
        "cash": serializers.CharField(),
        "equity": serializers.CharField(),
        "exposure": serializers.DictField(),
        "drawdown": serializers.DictField(allow_null=True),
        "var": serializers.DictField(allow_null=True, help_text="VaR/CVaR (null: < 20 returns)"),
        "limits": serializers.ListField(child=serializers.DictField()),
    },
)


class RiskReportView(APIView):
    """Exposures, VaR/CVaR, drawdown, limit utilisation and state (as ``manage.py risk report``)."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["risk"],
        parameters=[ReportQuery],
        responses={200: _REPORT, **read_errors(not_found=True)},
        examples=[
            OpenApiExample(
                "report",
                value={"account": "paper", "mode": "paper", "state": "active",
                       "cash": "100000.0000000000", "equity": "100000.0000000000",
                       "exposure": {}, "drawdown": {"current": 0.0, "maximum": 0.01},
                       "var": None, "limits": []},
                response_only=True,
            )
        ],
    )  # fmt: skip
    def get(self, request):
        query = ReportQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        account = account_or_404(request, query.validated_data["account"])
        return Response(to_jsonable(risk_report(account=account)))


class _StateChangeView(APIView):
    """Move an account to ``target`` (audited, broadcast; a running engine applies it)."""

    permission_classes = [IsTrader]
    target = TradingStateChoice.ACTIVE
    verb = "resumed"

    @extend_schema(
        tags=["risk"],
        request=StateChangeSerializer,
        responses={200: TradingStateSerializer, 400: ERRORS_400, **read_errors(not_found=True)},
        examples=[OpenApiExample("reason", value={"reason": "news at 14:00"}, request_only=True)],
    )
    def post(self, request, pk: int):
        account = account_or_404(request, pk)
        body = StateChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reason = body.validated_data["reason"] or f"{self.verb} via API by {request.user}"
        state = trading_state_set(
            account=account, state=self.target, reason=reason, actor=request.user
        )
        cancelled = 0
        if self.target == TradingStateChoice.HALTED:
            cancelled = orders_cancel_open(account=account, actor=request.user, reason="halted")
        data = {"account": account.pk, "state": state.state, "reason": state.reason,
                "changed_at": state.changed_at, "cancelled_orders": cancelled}  # fmt: skip
        return Response(TradingStateSerializer(data).data)


class HaltView(_StateChangeView):
    """Halt an account: no new orders, working orders cancelled."""

    target, verb = TradingStateChoice.HALTED, "halted"


class PauseView(_StateChangeView):
    """Pause new entries: the account only reduces risk (state ``reducing``)."""

    target, verb = TradingStateChoice.REDUCING, "paused"


class ResumeView(_StateChangeView):
    """Resume trading (state ``active``) after a halt or a pause."""

    target, verb = TradingStateChoice.ACTIVE, "resumed"
