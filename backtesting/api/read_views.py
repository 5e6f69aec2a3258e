"""Read endpoints of backtests: the list and one run (metrics, trades, equity, report link).

Backtests are research on market data, not account data: every viewer may read every run.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from backtesting import run_selectors as selectors
from backtesting.api import read_serializers as s
from rrr_site.api.pagination import keyset_page, keyset_page_serializer, keyset_response
from rrr_site.api.permissions import IsViewer
from rrr_site.api.query import parse_query
from rrr_site.api.schema import read_errors


class BacktestListView(APIView):
    """Backtest runs, newest first (sweeps' trials with ``sweep=<id>``)."""

    permission_classes = [IsViewer]

    @extend_schema(
        operation_id="backtests_list",
        tags=["backtests"],
        parameters=[s.BacktestListQuery],
        responses={
            200: keyset_page_serializer("BacktestPage", s.BacktestRunSerializer),
            **read_errors(),
        },
    )
    def get(self, request):
        query = parse_query(request, s.BacktestListQuery)
        runs = selectors.backtest_runs(
            status=query.get("status"), strategy=query.get("strategy"), parent=query.get("sweep")
        )
        rows, cursor = keyset_page(
            runs, limit=query["limit"], cursor=query.get("cursor"), ts_field="created_at"
        )
        return keyset_response(request, s.BacktestRunSerializer(rows, many=True).data, cursor)


class BacktestDetailView(APIView):
    """One run: every metric beside buy-and-hold, up to 1,000 trades, the equity curve."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["backtests"],
        responses={200: s.BacktestDetailSerializer, **read_errors(not_found=True)},
        examples=[
            OpenApiExample(
                "done",
                value={
                    "id": 3, "name": "", "parent": None, "strategy": "sma_cross",
                    "symbols": ["BTC-USD"], "timeframe": "1h", "start": "2024-01-01T00:00:00Z",
                    "end": "2024-06-30T00:00:00Z", "fill_model": "next_open",
                    "fees_bps": "10.0000", "slippage_bps": "2.0000",
                    "initial_capital": "100000.0000000000", "optimize": "", "status": "completed",
                    "progress": 1.0, "error": "", "created_at": "2026-01-02T10:00:00Z",
                    "started_at": "2026-01-02T10:00:00Z", "finished_at": "2026-01-02T10:00:05Z",
                    "headline": {"total_return": 0.12, "sharpe": 1.1, "max_drawdown": 0.08,
                                 "trades": 14.0},
                    "params": {"fast": 10, "slow": 30}, "periods_per_year": 8760.0,
                    "metrics": {"total_return": 0.12, "buy_and_hold": {"total_return": 0.05}},
                    "equity_curve": [["2024-01-01T00:00:00Z", 100000.0]], "trades": [],
                    "trades_total": 0, "report_url": None,
                },  # fmt: skip
                response_only=True,
            )
        ],
    )
    def get(self, request, pk: int):
        run = selectors.backtest_run(pk=pk)
        if run is None:
            raise NotFound("No such backtest.")
        run.api_trades, run.api_trades_total = selectors.backtest_trades(run=run)
        return Response(s.BacktestDetailSerializer(run, context={"request": request}).data)
