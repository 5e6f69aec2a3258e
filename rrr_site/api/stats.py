"""``GET /api/v1/stats``: counts, feed lag, engine uptime, last heartbeat, task queue depth."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring.stats_selectors import api_stats
from rrr_site.api.accounts import visible_accounts
from rrr_site.api.permissions import IsViewer
from rrr_site.api.schema import read_errors


class StatsSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    counts = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="accounts, orders, open_orders, fills, open_positions (your accounts); "
        "symbols, models, active_models, predictions, backtests",
    )
    latest_bar = serializers.DateTimeField(allow_null=True, help_text="Newest 1m bar stored")
    feed_lag_seconds = serializers.FloatField(
        allow_null=True, help_text="Seconds since the newest 1m bar closed"
    )
    engines_running = serializers.IntegerField(help_text="runtrader engines of your accounts")
    engine_uptime_seconds = serializers.FloatField(allow_null=True)
    last_heartbeat = serializers.DateTimeField(allow_null=True)
    api_uptime_seconds = serializers.FloatField(help_text="Since this web process started")
    queue_depth = serializers.IntegerField(
        allow_null=True, help_text="Tasks waiting on the django-q2 broker (null: unknown)"
    )


class StatsView(APIView):
    """Counts, feed lag, engine uptime and heartbeat, task queue depth."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["stats"],
        responses={200: StatsSerializer, **read_errors()},
        examples=[
            OpenApiExample(
                "running",
                value={
                    "as_of": "2026-01-02T10:00:00Z",
                    "counts": {"accounts": 1, "orders": 40, "open_orders": 2, "fills": 38,
                               "open_positions": 1, "symbols": 5, "models": 2,
                               "active_models": 1, "predictions": 1200, "backtests": 7},
                    "latest_bar": "2026-01-02T09:59:00Z", "feed_lag_seconds": 0.4,
                    "engines_running": 1, "engine_uptime_seconds": 3600.0,
                    "last_heartbeat": "2026-01-02T09:59:58Z", "api_uptime_seconds": 7200.0,
                    "queue_depth": 0,
                },  # fmt: skip
                response_only=True,
            )
        ],
    )
    def get(self, request):
        return Response(StatsSerializer(api_stats(accounts=visible_accounts(request))).data)
