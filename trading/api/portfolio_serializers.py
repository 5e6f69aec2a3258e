"""Serializers of the portfolio, trades, performance and profit reads (decimals as strings)."""

from __future__ import annotations

from rest_framework import serializers

from rrr_site.api.pagination import KeysetQuery
from trading.models import Fill, Position
from trading.portfolio_sql import decimal_text as _decimal
from trading.portfolio_sql import iso_utc as _iso

MAX_ID = 2**63 - 1
_MONEY = {"max_digits": 28, "decimal_places": 10}


def _money(help_text: str = "") -> serializers.DecimalField:
    return serializers.DecimalField(**_MONEY, help_text=help_text)


class AccountQuery(serializers.Serializer):
    """Narrow to one of your accounts (all you may see when omitted)."""

    pure_query = True  # rrr_site.api.query.parse_query may keep its answers

    account = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)


class PositionsQuery(AccountQuery):
    include_closed = serializers.BooleanField(default=False, help_text="Also flat positions")


class TimeRangeMixin(serializers.Serializer):
    start = serializers.DateTimeField(required=False, help_text="From (inclusive), ISO-8601")
    end = serializers.DateTimeField(required=False, help_text="Until (exclusive), ISO-8601")

    def validate(self, attrs: dict) -> dict:
        start, end = attrs.get("start"), attrs.get("end")
        if start is not None and end is not None and end <= start:
            raise serializers.ValidationError({"end": ["Must be after start."]})
        return attrs


class TradesQuery(AccountQuery, TimeRangeMixin, KeysetQuery):
    """Fills, newest first, one page at a time."""

    symbol = serializers.CharField(required=False, max_length=32, help_text="e.g. BTC-USD")


class RoundTripsQuery(AccountQuery):
    symbol = serializers.CharField(required=False, max_length=32)
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)
    offset = serializers.IntegerField(min_value=0, max_value=10_000_000, default=0)


class PerformanceQuery(AccountQuery):
    """Account (default: DEFAULT_ACCOUNT or your only one) and the sampling of its equity."""

    bucket = serializers.ChoiceField(
        choices=["1m", "5m", "15m", "1h", "4h", "1d"],
        default="1h",
        help_text="Equity sampled at the last snapshot of each bucket",
    )


class EquityCurveQuery(AccountQuery):
    points = serializers.IntegerField(
        min_value=2, max_value=5000, default=500, help_text="At most this many points"
    )


class ProfitQuery(AccountQuery):
    count = serializers.IntegerField(
        min_value=1, max_value=366, required=False, help_text="How many periods (newest first)"
    )


class PortfolioSerializer(serializers.Serializer):
    """One account's valuation now (positions at their last marks)."""

    account = serializers.IntegerField()
    name = serializers.CharField()
    mode = serializers.ChoiceField(choices=["paper", "live"])
    base_currency = serializers.CharField()
    cash = _money()
    equity = _money("Cash plus positions at their marks")
    positions_value = _money()
    gross_exposure = _money("Sum of |position value|")
    net_exposure = _money("Sum of signed position values")
    realized_pnl = _money("Gross of fees")
    unrealized_pnl = _money()
    daily_pnl = _money("Equity now minus the last snapshot before 00:00 UTC")
    total_pnl = _money("Equity minus the initial capital")
    initial_capital = _money()
    open_positions = serializers.IntegerField()
    trading_state = serializers.ChoiceField(choices=["active", "reducing", "halted"])
    as_of = serializers.DateTimeField()


_PORTFOLIO_MONEY = (
    "cash", "equity", "positions_value", "gross_exposure", "net_exposure", "realized_pnl",
    "unrealized_pnl", "daily_pnl", "total_pnl", "initial_capital",
)  # fmt: skip


def portfolio_json(row: dict) -> dict:
    """Return a ``PortfolioSerializer`` body from a ``portfolio_sql.portfolio_rows`` row, fast."""
    body = {key: row[key] for key in ("account", "name", "mode", "base_currency")}
    body.update((key, _decimal(row[key])) for key in _PORTFOLIO_MONEY)
    body["open_positions"] = row["open_positions"]
    body["trading_state"] = row["trading_state"]
    body["as_of"] = _iso(row["as_of"])
    return {key: body[key] for key in PortfolioSerializer._declared_fields}


class PositionSerializer(serializers.ModelSerializer):
    account = serializers.IntegerField(source="account_id")
    account_name = serializers.CharField(source="account.name")
    symbol = serializers.CharField(source="symbol.name")

    class Meta:
        model = Position
        fields = [
            "id", "account", "account_name", "symbol", "quantity", "average_price", "mark_price",
            "realized_pnl", "unrealized_pnl", "fees", "opened_at", "closed_at", "updated_at",
        ]  # fmt: skip


class FillSerializer(serializers.ModelSerializer):
    """A fill (the documented shape of ``fill_json``, which the trades page uses)."""

    account = serializers.IntegerField(source="account_id")
    order = serializers.IntegerField(source="order_id")
    symbol = serializers.CharField(source="symbol.name")

    class Meta:
        model = Fill
        fields = [
            "id", "account", "order", "symbol", "side", "quantity", "price", "fee", "liquidity",
            "venue_trade_id", "ts",
        ]  # fmt: skip


def fill_json(row: dict) -> dict:
    """Return a ``FillSerializer`` body from a ``portfolio_selectors.fills_of`` row, fast."""
    return {
        "id": row["id"], "account": row["account_id"], "order": row["order_id"],
        "symbol": row["symbol__name"], "side": row["side"], "quantity": _decimal(row["quantity"]),
        "price": _decimal(row["price"]), "fee": _decimal(row["fee"]),
        "liquidity": row["liquidity"], "venue_trade_id": row["venue_trade_id"],
        "ts": _iso(row["ts"]),
    }  # fmt: skip


class RoundTripSerializer(serializers.Serializer):
    """A trade from entry to exit, rebuilt from the fills (open trades marked at the last mark)."""

    symbol = serializers.CharField()
    side = serializers.ChoiceField(choices=["long", "short"])
    quantity = _money()
    entry_ts = serializers.DateTimeField()
    entry_price = _money()
    exit_ts = serializers.DateTimeField(allow_null=True)
    exit_price = serializers.DecimalField(**_MONEY, allow_null=True)
    pnl = _money("Net of fees")
    fees = _money()
    return_pct = serializers.FloatField()
    is_open = serializers.BooleanField()


class RoundTripPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = RoundTripSerializer(many=True)


class MetricsField(serializers.DictField):
    """``{name: number or null}``."""

    child = serializers.FloatField(allow_null=True)


class PerformanceSerializer(serializers.Serializer):
    account = serializers.IntegerField()
    snapshots = serializers.IntegerField(help_text="Snapshots stored")
    points = serializers.IntegerField(help_text="Equity points the metrics use")
    start = serializers.DateTimeField(allow_null=True)
    end = serializers.DateTimeField(allow_null=True)
    periods_per_year = serializers.FloatField(allow_null=True)
    metrics = MetricsField(help_text="The backtest metrics (backtesting.engine.metrics)")
    baseline = serializers.DictField(help_text="The same metrics for holding cash")
    note = serializers.CharField(required=False, allow_blank=True)
    trades_as_of = serializers.DateTimeField(
        allow_null=True, required=False,
        help_text="When the background tally stored the trade metrics (null before the first)",
    )  # fmt: skip
    trades_behind = serializers.BooleanField(
        required=False, help_text="Fills came since the trade metrics were tallied (updating)"
    )


class EquityPointSerializer(serializers.Serializer):
    ts = serializers.DateTimeField()
    equity = _money()
    drawdown = serializers.FloatField()


class EquityCurveSerializer(serializers.Serializer):
    account = serializers.IntegerField()
    points = EquityPointSerializer(many=True)


class PeriodProfitSerializer(serializers.Serializer):
    period = serializers.DateTimeField(help_text="Start of the day, week (Monday) or month, UTC")
    starting_equity = _money()
    ending_equity = _money()
    profit = _money()
    profit_ratio = serializers.FloatField(allow_null=True)
    fills = serializers.IntegerField()
    fees = _money()


class SymbolProfitSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    quantity = _money()
    realized_pnl = _money("Gross of fees")
    unrealized_pnl = _money()
    fees = _money()
    net_pnl = _money("Realised + unrealised - fees")
    fills = serializers.IntegerField()
    traded_value = _money()
