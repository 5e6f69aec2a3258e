"""Read endpoints: portfolio, positions, trades (fills, round trips), performance, profit."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from rrr_site.api.accounts import account_ids_in_scope, account_or_default, accounts_in_scope
from rrr_site.api.pagination import (
    decode_cursor,
    encode_cursor,
    keyset_page_serializer,
    keyset_response,
)
from rrr_site.api.permissions import IsViewer
from rrr_site.api.query import parse_query
from rrr_site.api.schema import read_errors
from trading import portfolio_selectors as selectors
from trading import portfolio_sql
from trading.api import portfolio_serializers as s

BUCKET_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}
_PORTFOLIO_EXAMPLE = {
    "account": 1, "name": "paper", "mode": "paper", "base_currency": "USD",
    "cash": "90000.0000000000", "equity": "100250.0000000000",
    "positions_value": "10250.0000000000", "gross_exposure": "10250.0000000000",
    "net_exposure": "10250.0000000000", "realized_pnl": "0.0000000000",
    "unrealized_pnl": "250.0000000000", "daily_pnl": "120.0000000000",
    "total_pnl": "250.0000000000", "initial_capital": "100000.0000000000", "open_positions": 1,
    "trading_state": "active", "as_of": "2026-01-02T10:00:00Z",
}  # fmt: skip


class PortfolioView(APIView):
    """Cash, equity, daily and total P&L, exposure and trading state of each of your accounts."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["portfolio"],
        parameters=[s.AccountQuery],
        responses={200: s.PortfolioSerializer(many=True), **read_errors(not_found=True)},
        examples=[OpenApiExample("one account", value=[_PORTFOLIO_EXAMPLE], response_only=True)],
    )
    def get(self, request):
        query = parse_query(request, s.AccountQuery)
        ids = account_ids_in_scope(request, query.get("account"))
        rows = portfolio_sql.portfolio_rows(account_ids=ids, now=timezone.now())
        return Response([s.portfolio_json(row) for row in rows])


class PositionsView(APIView):
    """Positions of your accounts (open ones unless ``include_closed``)."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["portfolio"],
        parameters=[s.PositionsQuery],
        responses={200: s.PositionSerializer(many=True), **read_errors(not_found=True)},
    )
    def get(self, request):
        query = parse_query(request, s.PositionsQuery)
        accounts = accounts_in_scope(request, query.get("account"))
        rows = selectors.positions_of(accounts=accounts, include_closed=query["include_closed"])
        return Response(s.PositionSerializer(rows, many=True).data)


class TradesView(APIView):
    """Fills of your accounts, newest first, keyset-paginated (follow ``next``)."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["trades"],
        parameters=[s.TradesQuery],
        responses={
            200: keyset_page_serializer("FillPage", s.FillSerializer),
            **read_errors(not_found=True),
        },
        examples=[
            OpenApiExample(
                "page",
                value={
                    "next": "http://127.0.0.1:8000/api/v1/trades?limit=1&cursor=WyIyMDI2LTAx",
                    "results": [
                        {
                            "id": 7,
                            "account": 1,
                            "order": 5,
                            "symbol": "BTC-USD",
                            "side": "buy",
                            "quantity": "0.1000000000",
                            "price": "50000.0000000000",
                            "fee": "5.0000000000",
                            "liquidity": "taker",
                            "venue_trade_id": "p-1",
                            "ts": "2026-01-02T10:00:00Z",
                        }
                    ],
                },  # fmt: skip
                response_only=True,
            )
        ],
    )
    def get(self, request):
        query = parse_query(request, s.TradesQuery)
        rows, last = portfolio_sql.fill_page(
            account_ids=account_ids_in_scope(request, query.get("account")),
            limit=query["limit"],
            symbol=query.get("symbol"),
            start=query.get("start"),
            end=query.get("end"),
            after=decode_cursor(query["cursor"]) if query.get("cursor") else None,
        )
        return keyset_response(request, rows, encode_cursor(*last) if last else None)


class RoundTripsView(APIView):
    """Round trips (entry to exit) of one account, rebuilt from its fills, newest entry first."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["trades"],
        parameters=[s.RoundTripsQuery],
        responses={200: s.RoundTripPageSerializer, **read_errors(not_found=True)},
    )
    def get(self, request):
        query = parse_query(request, s.RoundTripsQuery)
        account = account_or_default(request, query.get("account"))
        try:
            trips = selectors.round_trips_of(account=account, symbol=query.get("symbol"))
        except selectors.TooManyFills as exc:
            raise ValidationError({"symbol": [str(exc)]}) from None
        page = trips[query["offset"] : query["offset"] + query["limit"]]
        results = s.RoundTripSerializer([_trip(t) for t in page], many=True).data
        return Response({"count": len(trips), "results": results})


def _trip(trip) -> dict:
    return {
        "symbol": trip.symbol, "side": trip.side, "quantity": trip.quantity,
        "entry_ts": trip.entry_ts, "entry_price": trip.entry_price, "exit_ts": trip.exit_ts,
        "exit_price": trip.exit_price, "pnl": trip.pnl, "fees": trip.fees,
        "return_pct": trip.return_pct, "is_open": trip.is_open,
    }  # fmt: skip


class PerformanceView(APIView):
    """The backtest metrics on an account's live equity, beside holding cash."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["performance"],
        parameters=[s.PerformanceQuery],
        responses={200: s.PerformanceSerializer, **read_errors(not_found=True)},
    )
    def get(self, request):
        query = parse_query(request, s.PerformanceQuery)
        account = account_or_default(request, query.get("account"))
        data = selectors.performance_of(
            account=account, bucket_seconds=BUCKET_SECONDS[query["bucket"]]
        )
        return Response(s.PerformanceSerializer(data).data)


class EquityCurveView(APIView):
    """An account's equity curve, downsampled to at most ``points`` points."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["performance"],
        parameters=[s.EquityCurveQuery],
        responses={200: s.EquityCurveSerializer, **read_errors(not_found=True)},
    )
    def get(self, request):
        query = parse_query(request, s.EquityCurveQuery)
        account = account_or_default(request, query.get("account"))
        points = selectors.equity_curve_json(account=account, points=query["points"])
        # The points array is written once per curve; the body is EquityCurveSerializer's shape.
        body = b'{"account":%d,"points":%s}' % (account.pk, points)
        return HttpResponse(body, content_type="application/json")


class ProfitPeriodView(APIView):
    """Profit per day, week or month (as Freqtrade's /daily, /weekly, /monthly)."""

    permission_classes = [IsViewer]
    period = "day"
    default_count = {"day": 7, "week": 4, "month": 6}

    @extend_schema(
        tags=["profit"],
        parameters=[s.ProfitQuery],
        responses={200: s.PeriodProfitSerializer(many=True), **read_errors(not_found=True)},
    )
    def get(self, request):
        query = parse_query(request, s.ProfitQuery)
        account = account_or_default(request, query.get("account"))
        count = query.get("count") or self.default_count[self.period]
        rows = selectors.profit_by_period(account=account, period=self.period, count=count)
        return Response(s.PeriodProfitSerializer(rows, many=True).data)


class ProfitSymbolView(APIView):
    """P&L, fees, fills and traded value per symbol of one account."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["profit"],
        parameters=[s.AccountQuery],
        responses={200: s.SymbolProfitSerializer(many=True), **read_errors(not_found=True)},
    )
    def get(self, request):
        query = parse_query(request, s.AccountQuery)
        account = account_or_default(request, query.get("account"))
        rows = selectors.profit_by_symbol(account=account)
        return Response(s.SymbolProfitSerializer(rows, many=True).data)
