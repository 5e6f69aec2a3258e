"""Serializers of orders: the create request (all order types, brackets) and the order row."""

from __future__ import annotations

import re
from decimal import Decimal

from rest_framework import serializers

from rrr_site.api.pagination import KeysetQuery
from trading.choices import OrderSide, OrderStatus, OrderType, TimeInForce
from trading.models import Order
from trading.order_entry import OrderRequest

_MONEY = {"max_digits": 28, "decimal_places": 10, "min_value": Decimal("1e-10")}
# ASCII digits, one optional point and exponent: Python's Decimal (and so DRF's field) also reads
# "1_0" as 10 and other scripts' digits ("٣", "３") as numbers, so a typo became a 10x order.
PLAIN_DECIMAL = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)


class PlainDecimalField(serializers.DecimalField):
    """A decimal written in plain ASCII digits (a JSON number, or a string of one)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and not PLAIN_DECIMAL.fullmatch(data):
            self.fail("invalid")
        return super().to_internal_value(data)


def _money(help_text: str, *, required: bool = False) -> serializers.DecimalField:
    return PlainDecimalField(
        **_MONEY, required=required, allow_null=not required, help_text=help_text
    )


class OrderCreateSerializer(serializers.Serializer):
    """An order to place: market, limit, stop, stop-limit, take-profit, trailing; a bracket."""

    account = serializers.IntegerField(min_value=1, help_text="Id of one of your accounts")
    symbol = serializers.CharField(max_length=32, help_text="e.g. BTC-USD")
    side = serializers.ChoiceField(choices=OrderSide.choices)
    type = serializers.ChoiceField(choices=OrderType.choices, default=OrderType.MARKET)
    quantity = _money("Base-currency quantity (a decimal string)", required=True)
    price = _money("Limit price (limit, stop_limit)")
    stop_price = _money("Trigger price (stop, stop_limit, take_profit)")
    trail_amount = _money("Trailing distance in quote currency (trailing_stop)")
    trail_percent = PlainDecimalField(
        max_digits=12, decimal_places=8, min_value=Decimal("1e-8"), max_value=Decimal(1),
        required=False, allow_null=True, help_text="Trailing distance as a fraction (0.02 = 2 %)",
    )  # fmt: skip
    time_in_force = serializers.ChoiceField(choices=TimeInForce.choices, default=TimeInForce.GTC)
    reduce_only = serializers.BooleanField(default=False)
    stop_loss = _money("Bracket: protective stop price, activated as the entry fills")
    take_profit = _money("Bracket: take-profit limit price, activated as the entry fills")
    algo = serializers.ChoiceField(
        choices=[("twap", "twap"), ("vwap", "vwap")], required=False,
        help_text="Work a market order as a TWAP/VWAP parent over `duration` seconds",
    )  # fmt: skip
    duration = serializers.FloatField(
        min_value=1, max_value=7 * 86_400, required=False, help_text="algo: seconds to work it"
    )
    slices = serializers.IntegerField(
        min_value=1, max_value=10_000, required=False, help_text="algo: child orders (default: "
        "from the duration)",
    )  # fmt: skip
    profile = serializers.ListField(
        child=PlainDecimalField(max_digits=20, decimal_places=10, min_value=Decimal(0)),
        min_length=1, max_length=10_000, required=False,
        help_text="vwap: the volume weight of each slice",
    )  # fmt: skip
    max_participation = PlainDecimalField(
        max_digits=12, decimal_places=8, min_value=Decimal("1e-8"), max_value=Decimal(1),
        required=False, help_text="algo: at most this share of the market's volume per slice",
    )  # fmt: skip

    def validate(self, attrs: dict) -> dict:
        algo_fields = {"duration", "slices", "profile", "max_participation"} & set(attrs)
        if algo_fields and "algo" not in attrs:
            raise serializers.ValidationError(
                {"algo": [f"{', '.join(sorted(algo_fields))} need algo (twap or vwap)"]}
            )
        if "algo" in attrs and "duration" not in attrs:
            raise serializers.ValidationError({"duration": ["Required with algo."]})
        return attrs

    def to_request(self) -> OrderRequest:
        """Return the service's request from the validated data."""
        data = {k: v for k, v in self.validated_data.items() if k != "account"}
        if "profile" in data:
            data["profile"] = tuple(data["profile"])
        return OrderRequest(**data)


class OrderSerializer(serializers.ModelSerializer):
    """An order and its state (money and quantities as exact decimal strings)."""

    account_name = serializers.CharField(source="account.name", read_only=True)
    symbol = serializers.CharField(source="symbol.name", read_only=True)
    cancel_requested = serializers.SerializerMethodField()
    stop_loss = serializers.SerializerMethodField()
    take_profit = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id", "account", "account_name", "symbol", "client_order_id", "parent", "side",
            "type", "time_in_force", "quantity", "price", "stop_price", "trail_amount",
            "trail_percent", "reduce_only", "stop_loss", "take_profit", "status",
            "filled_quantity", "average_fill_price", "fees", "strategy", "reject_reason",
            "cancel_requested", "created_at", "updated_at", "closed_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_cancel_requested(self, order: Order) -> bool:
        """Return True when a cancel was asked for and the engine has not acted yet."""
        return order.cancel_requested_at is not None

    def get_stop_loss(self, order: Order) -> str | None:
        """Return the bracket's stop-loss price, if any."""
        return (order.metadata or {}).get("stop_loss")

    def get_take_profit(self, order: Order) -> str | None:
        """Return the bracket's take-profit price, if any."""
        return (order.metadata or {}).get("take_profit")


class RiskVerdictSerializer(serializers.Serializer):
    """The pre-trade check's decision (rule is the limit kind, or trading_state)."""

    decision = serializers.ChoiceField(choices=["approve", "reduce", "reject"])
    rule = serializers.CharField(allow_blank=True)
    reason = serializers.CharField(allow_blank=True)
    quantity = serializers.CharField(help_text="Quantity allowed (0 when rejected)")
    requested_quantity = serializers.CharField()
    reference_price = serializers.CharField(allow_null=True)


class OrderCreatedSerializer(serializers.Serializer):
    """201: the recorded order and the risk verdict it passed."""

    order = OrderSerializer()
    risk = RiskVerdictSerializer()


class OrderRefusedSerializer(serializers.Serializer):
    """422: the risk verdict; no order was recorded."""

    detail = serializers.CharField()
    risk = RiskVerdictSerializer()


class OrderListQuery(KeysetQuery):
    """Filters of the order list."""

    account = serializers.IntegerField(min_value=1, required=False)
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    open = serializers.BooleanField(required=False, help_text="Only working orders")
    symbol = serializers.CharField(max_length=32, required=False)
    side = serializers.ChoiceField(choices=OrderSide.choices, required=False)
    since = serializers.DateTimeField(required=False, help_text="Created at or after")
    until = serializers.DateTimeField(required=False, help_text="Created before")


class CancelSerializer(serializers.Serializer):
    """Why an order is cancelled (kept in the audit log)."""

    reason = serializers.CharField(max_length=200, required=False, default="api")
