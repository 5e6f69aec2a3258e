"""Engine control: is a ``runtrader`` running each of your accounts, and with what."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from risk.selectors import trading_state_of
from rrr_site.api.accounts import accounts_in_scope
from rrr_site.api.permissions import IsViewer
from rrr_site.api.schema import read_errors
from trading.selectors import engine_status


class EngineStatusSerializer(serializers.Serializer):
    """One account's engine: running, strategy, symbols, last heartbeat and trading state."""

    account = serializers.IntegerField()
    account_name = serializers.CharField()
    running = serializers.BooleanField(help_text="A heartbeat younger than 45 s in a session")
    status = serializers.CharField(help_text="running, degraded (cannot persist) or stopped")
    trading_state = serializers.ChoiceField(choices=["active", "reducing", "halted"])
    last_heartbeat = serializers.DateTimeField(allow_null=True)
    strategy = serializers.CharField(allow_blank=True)
    symbols = serializers.ListField(child=serializers.CharField())
    feed = serializers.CharField(allow_blank=True)
    timeframe = serializers.CharField(allow_blank=True)
    started_at = serializers.DateTimeField(allow_null=True)


class EngineQuery(serializers.Serializer):
    """Narrow to one account."""

    account = serializers.IntegerField(min_value=1, required=False)


class EngineStatusView(APIView):
    """The engine of each of your accounts."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["control"],
        parameters=[EngineQuery],
        responses={200: EngineStatusSerializer(many=True), **read_errors(not_found=True)},
        examples=[
            OpenApiExample(
                "running",
                value=[{"account": 1, "account_name": "paper", "running": True,
                        "status": "running", "trading_state": "active",
                        "last_heartbeat": "2026-01-05T10:00:05Z", "strategy": "sma_cross",
                        "symbols": ["BTC-USD", "ETH-USD"], "feed": "sim", "timeframe": "1m",
                        "started_at": "2026-01-05T09:00:00Z"}],
                response_only=True,
            )
        ],
    )  # fmt: skip
    def get(self, request):
        query = EngineQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = [
            {**engine_status(account=a), "trading_state": trading_state_of(account=a)}
            for a in accounts_in_scope(request, query.validated_data.get("account"))
        ]
        return Response(EngineStatusSerializer(rows, many=True).data)
