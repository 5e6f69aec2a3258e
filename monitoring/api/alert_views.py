"""Alert endpoints (list, acknowledge, resolve) and push-device registration."""

from __future__ import annotations

from django.db.models import Q
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring.alerts import alert_acknowledge, alert_resolve
from monitoring.api.alert_serializers import AlertQuery, AlertSerializer, DeviceSerializer
from monitoring.models import Alert
from monitoring.push import TooManyDevices, push_device_register, push_device_unregister
from rrr_site.api.accounts import visible_accounts
from rrr_site.api.permissions import IsTrader, IsViewer
from rrr_site.api.schema import ERRORS_400, read_errors

_ALERT = {
    "id": 7, "rule": "pager", "source": "risk", "kind": "max_drawdown_pct",
    "severity": "critical", "account": "paper", "symbol": "",
    "message": "drawdown 21.5 % beyond the 20 % limit", "context": {"drawdown": 0.215},
    "state": "open", "occurrences": 3, "deduplicated": 2,
    "first_seen": "2026-01-05T12:00:00Z", "last_seen": "2026-01-05T12:03:00Z",
    "last_sent_at": "2026-01-05T12:00:00Z", "escalated_at": None, "acknowledged_at": None,
    "acknowledged_by": "", "resolved_at": None, "resolved_by": "",
}  # fmt: skip


def _alerts_visible(request):
    """Alerts of the user's accounts and those that name no account."""
    names = visible_accounts(request).values_list("name", flat=True)
    return Alert.objects.filter(Q(account="") | Q(account__in=names)).select_related("rule")


class AlertListView(APIView):
    """Recent alerts, newest first (``state`` narrows to open, acknowledged or resolved)."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["alerts"],
        parameters=[AlertQuery],
        responses={200: AlertSerializer(many=True), **read_errors()},
        examples=[OpenApiExample("alerts", value=[_ALERT], response_only=True)],
    )
    def get(self, request):
        query = AlertQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        alerts = _alerts_visible(request)
        if "state" in query.validated_data:
            alerts = alerts.filter(state=query.validated_data["state"])
        alerts = alerts.order_by("-last_seen")[: query.validated_data["limit"]]
        return Response(AlertSerializer(alerts, many=True).data)


class _AlertChangeView(APIView):
    """Change an alert's state (audited)."""

    permission_classes = [IsTrader]
    change = staticmethod(alert_acknowledge)

    @extend_schema(
        tags=["alerts"],
        request=None,
        responses={200: AlertSerializer, **read_errors(not_found=True)},
        examples=[OpenApiExample("alert", value=_ALERT, response_only=True)],
    )
    def post(self, request, pk: int):
        alert = _alerts_visible(request).filter(pk=pk).first()
        if alert is None:
            raise NotFound("No such alert.")
        return Response(AlertSerializer(self.change(alert=alert, actor=request.user)).data)


class AlertAcknowledgeView(_AlertChangeView):
    """Acknowledge an open alert: it stops escalating; repeats are still counted."""

    change = staticmethod(alert_acknowledge)


class AlertResolveView(_AlertChangeView):
    """Resolve an alert: the next event of its kind opens a new one and is sent."""

    change = staticmethod(alert_resolve)


class DeviceListView(APIView):
    """Register this user's device for push alerts (one token per user and device)."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["alerts"],
        request=DeviceSerializer,
        responses={201: DeviceSerializer, 400: ERRORS_400, **read_errors()},
        examples=[
            OpenApiExample(
                "iPhone",
                value={"device_id": "ios-6F1C", "platform": "ios", "token": "a1b2c3..."},
                request_only=True,
            )
        ],
    )
    def post(self, request):
        body = DeviceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            device = push_device_register(user=request.user, **body.validated_data)
        except TooManyDevices as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(DeviceSerializer(device).data, status=status.HTTP_201_CREATED)


class DeviceDetailView(APIView):
    """Unregister one of this user's devices."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["alerts"], request=None, responses={204: None, **read_errors(not_found=True)}
    )
    def delete(self, request, device_id: str):
        if not push_device_unregister(user=request.user, device_id=device_id):
            raise NotFound("No such device.")
        return Response(status=status.HTTP_204_NO_CONTENT)
