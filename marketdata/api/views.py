"""Market-data endpoints: symbols, OHLCV bar pages (resampled on request), latest quote/book."""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from marketdata.choices import Timeframe
from marketdata.engine.events import TIMEFRAME_SECONDS
from marketdata.models import Bar, BookSnapshot, Quote, Symbol
from marketdata.price_selectors import bars_page, latest_book, latest_quote
from rrr_site.api.permissions import IsViewer
from rrr_site.api.schema import read_errors

MAX_BARS = 10_000


class SymbolSerializer(serializers.ModelSerializer):
    """A tradable symbol (tick/lot sizes and minimum notional as exact decimal strings)."""

    class Meta:
        model = Symbol
        fields = ["id", "name", "base", "quote", "tick_size", "lot_size", "min_notional", "active"]
        read_only_fields = fields


class SymbolListView(APIView):
    """The symbols RRR knows."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["market data"],
        responses={200: SymbolSerializer(many=True), **read_errors()},
        examples=[
            OpenApiExample(
                "symbols",
                value=[{"id": 1, "name": "BTC-USD", "base": "BTC", "quote": "USD",
                        "tick_size": "0.0100000000", "lot_size": "0.0000100000",
                        "min_notional": "1.0000000000", "active": True}],
                response_only=True,
            )
        ],
    )  # fmt: skip
    def get(self, request):
        return Response(SymbolSerializer(Symbol.objects.order_by("name"), many=True).data)


class BarQuery(serializers.Serializer):
    """A bar range: stored timeframe, optional resampling, cursor pages of up to 10,000 bars."""

    timeframe = serializers.ChoiceField(choices=Timeframe.choices, default="1m")
    resample = serializers.ChoiceField(
        choices=Timeframe.choices, required=False, help_text="A coarser timeframe to combine into"
    )
    start = serializers.DateTimeField(required=False, help_text="Default: the epoch")
    end = serializers.DateTimeField(required=False, help_text="Exclusive; default: now")
    limit = serializers.IntegerField(min_value=1, max_value=MAX_BARS, default=1000)
    cursor = serializers.CharField(
        required=False, max_length=64, help_text="The `next_cursor` of the previous page"
    )
    simulated = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text=(
            "true: the simulated market's bars; false: the observed ones; unset: the observed"
            " ones, or the simulated market's when the symbol has none (never both)"
        ),
    )

    def validate_cursor(self, value: str) -> datetime:
        try:
            ts = parse_datetime(value)
            if ts is None or ts.tzinfo is None:
                raise ValueError(value)
            ts.astimezone(UTC)  # OverflowError: its UTC is outside years 1-9999
        except (ValueError, OverflowError):
            raise serializers.ValidationError("Malformed cursor.") from None
        return ts

    def validate(self, attrs: dict) -> dict:
        source, target = attrs["timeframe"], attrs.get("resample")
        if target is not None:
            ratio, rest = divmod(TIMEFRAME_SECONDS[target], TIMEFRAME_SECONDS[source])
            if ratio < 1 or rest:
                raise serializers.ValidationError(
                    {"resample": [f"must be a whole multiple of timeframe {source}"]}
                )
        if "start" in attrs and "end" in attrs and attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": ["must be after start"]})
        return attrs


class BarSerializer(serializers.Serializer):
    """One OHLCV bar (market-data prices are stored as floats); ``ts`` is the window start."""

    ts = serializers.DateTimeField()
    open = serializers.FloatField()
    high = serializers.FloatField()
    low = serializers.FloatField()
    close = serializers.FloatField()
    volume = serializers.FloatField()
    vwap = serializers.FloatField(allow_null=True)
    trade_count = serializers.IntegerField()


class BarPageSerializer(serializers.Serializer):
    """A page of bars and the cursor of the next one (null on the last page)."""

    symbol = serializers.CharField()
    timeframe = serializers.CharField()
    next_cursor = serializers.CharField(allow_null=True)
    bars = BarSerializer(many=True)


def _symbol_or_404(name: str) -> Symbol:
    symbol = Symbol.objects.filter(name=name).first()
    if symbol is None:
        raise NotFound(f"No symbol {name!r}.")
    return symbol


def _newest_or_404(symbol: str, read, what: str):
    """Return ``read(symbol=...)``: 404 naming the symbol when it is unknown, or ``what`` when
    none is stored (the quote and book endpoints)."""
    _symbol_or_404(symbol)
    row = read(symbol=symbol)
    if row is None:
        raise NotFound(f"No {what} stored for {symbol}.")
    return row


def _simulated(symbol: str, asked: bool | None) -> bool:
    """The origin to read: as asked, else the observed bars unless the symbol has none (a
    simulated session such as ``make run``), as the dashboard's charts do."""
    if asked is not None:
        return asked
    return not Bar.objects.filter(symbol__name=symbol, simulated=False).exists()


class BarListView(APIView):
    """OHLCV bars of a symbol in [start, end), oldest first, cursor-paginated."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["market data"],
        parameters=[BarQuery],
        responses={200: BarPageSerializer, **read_errors(not_found=True)},
        examples=[
            OpenApiExample(
                "page",
                value={"symbol": "BTC-USD", "timeframe": "5m",
                       "next_cursor": "2026-01-05T10:10:00+00:00",
                       "bars": [{"ts": "2026-01-05T10:00:00Z", "open": 50000.0,
                                 "high": 50100.0, "low": 49950.0, "close": 50050.0,
                                 "volume": 12.5, "vwap": 50020.1, "trade_count": 340}]},
                response_only=True,
            )
        ],
    )  # fmt: skip
    def get(self, request, symbol: str):
        _symbol_or_404(symbol)
        query = BarQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        start = q.get("cursor") or q.get("start") or datetime(1970, 1, 1, tzinfo=UTC)
        bars, cursor = bars_page(
            symbol=symbol,
            timeframe=q["timeframe"],
            start=start,
            end=q.get("end") or datetime.now(UTC),
            limit=q["limit"],
            resample_to=q.get("resample"),
            simulated=_simulated(symbol, q["simulated"]),
        )
        page = {
            "symbol": symbol,
            "timeframe": q.get("resample") or q["timeframe"],
            "next_cursor": cursor.isoformat() if cursor else None,
            "bars": bars,
        }
        return Response(BarPageSerializer(page).data)


class QuoteSerializer(serializers.ModelSerializer):
    """The newest stored best bid/ask."""

    class Meta:
        model = Quote
        fields = ["ts", "venue", "bid", "bid_size", "ask", "ask_size"]
        read_only_fields = fields


class QuoteView(APIView):
    """The newest stored quote of a symbol (404 when none is stored)."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["market data"],
        responses={200: QuoteSerializer, **read_errors(not_found=True)},
        examples=[
            OpenApiExample(
                "quote",
                value={"ts": "2026-01-05T10:00:00.250Z", "venue": "sim", "bid": 50000.0,
                       "bid_size": 1.2, "ask": 50001.0, "ask_size": 0.8},
                response_only=True,
            )
        ],
    )  # fmt: skip
    def get(self, request, symbol: str):
        return Response(QuoteSerializer(_newest_or_404(symbol, latest_quote, "quote")).data)


class BookSerializer(serializers.ModelSerializer):
    """The newest stored order-book snapshot: bids and asks as [price, size] levels."""

    bids = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))
    asks = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))

    class Meta:
        model = BookSnapshot
        fields = ["ts", "venue", "sequence", "depth", "bids", "asks"]
        read_only_fields = fields


class BookView(APIView):
    """The newest stored order book of a symbol (404 when none is stored)."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["market data"],
        responses={200: BookSerializer, **read_errors(not_found=True)},
        examples=[
            OpenApiExample(
                "book",
                value={"ts": "2026-01-05T10:00:00Z", "venue": "sim", "sequence": 1042,
                       "depth": 2, "bids": [[50000.0, 1.2], [49999.0, 3.0]],
                       "asks": [[50001.0, 0.8], [50002.0, 2.5]]},
                response_only=True,
            )
        ],
    )  # fmt: skip
    def get(self, request, symbol: str):
        return Response(BookSerializer(_newest_or_404(symbol, latest_book, "order book")).data)
