"""Order endpoints: list, create (risk-checked, idempotent), detail, cancel; close, flatten."""

from __future__ import annotations

from django.db.models import Q
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from rrr_site.api.accounts import account_or_404, visible_accounts
from rrr_site.api.pagination import keyset_page, keyset_page_serializer, keyset_response
from rrr_site.api.permissions import IsTrader, ViewerReadsTraderWrites
from rrr_site.api.schema import ERRORS_400, error_response, read_errors
from trading.api.order_serializers import (
    CancelSerializer,
    OrderCreatedSerializer,
    OrderCreateSerializer,
    OrderListQuery,
    OrderRefusedSerializer,
    OrderSerializer,
)
from trading.choices import OPEN_ORDER_STATUSES
from trading.engine.errors import OrderRejected
from trading.models import Order
from trading.order_entry import IdempotencyKeyReused, order_place
from trading.services import account_flatten, order_cancel, position_close

_IDEMPOTENCY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Any unique string (<= 255 chars): a retry with the same key and body answers "
    "the first result and never places a second order; the same key with another body is a 422",
)
_CONFLICT = OpenApiResponse(
    response=inline_serializer(name="Conflict", fields={"detail": serializers.CharField()}),
    description="The order is no longer working, or there is no position to close",
)
_VERDICT = {
    "decision": "approve", "rule": "", "reason": "", "quantity": "0.1000000000",
    "requested_quantity": "0.1000000000", "reference_price": "50000.0",
}  # fmt: skip
_ORDER_EXAMPLE = {
    "id": 42, "account": 1, "account_name": "paper", "symbol": "BTC-USD",
    "client_order_id": "4f1c2d1e-7a0b-4a53-9a51-1c2b3d4e5f60", "parent": None, "side": "buy",
    "type": "limit", "time_in_force": "gtc", "quantity": "0.1000000000",
    "price": "49500.0000000000", "stop_price": None, "trail_amount": None, "trail_percent": None,
    "reduce_only": False, "stop_loss": "48000", "take_profit": "52000", "status": "pending",
    "filled_quantity": "0E-10", "average_fill_price": None, "fees": "0E-10", "strategy": "api",
    "reject_reason": "", "cancel_requested": False, "created_at": "2026-01-05T10:00:00Z",
    "updated_at": "2026-01-05T10:00:00Z", "closed_at": None,
}  # fmt: skip
_REFUSED = OpenApiExample(
    "refused by risk",
    value={
        "detail": "Refused by the pre-trade risk check.",
        "risk": {**_VERDICT, "decision": "reject", "rule": "trading_state", "quantity": "0",
                 "reason": "account halted: no new orders"},
    },
    status_codes=["422"],
)  # fmt: skip


def _bad_order(exc: OrderRejected) -> ValidationError:
    """Return the 400 for an order the engine's rules refuse."""
    field = "symbol" if exc.reason.startswith("unknown symbol") else "non_field_errors"
    if "bracket" in exc.reason:
        field = "stop_loss"
    if exc.reason.startswith("algo"):
        field = "algo"
    return ValidationError({field: [exc.reason]})


class OrderListCreateView(APIView):
    """Orders of your accounts (newest first); place an order."""

    permission_classes = [ViewerReadsTraderWrites]

    @extend_schema(
        operation_id="orders_list",  # not orders_retrieve, the detail's id (check --deploy W001)
        tags=["orders"],
        parameters=[OrderListQuery],
        responses={200: keyset_page_serializer("OrderPage", OrderSerializer), **read_errors()},
        examples=[
            OpenApiExample("page", value={"next": None, "results": [_ORDER_EXAMPLE]},
                           response_only=True)
        ],
    )  # fmt: skip
    def get(self, request):
        query = OrderListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        orders = Order.objects.filter(account__in=visible_accounts(request))
        if "account" in q:
            orders = orders.filter(account=account_or_404(request, q["account"]))
        if "status" in q:
            orders = orders.filter(status=q["status"])
        if q.get("open") is not None:
            working = Q(status__in=OPEN_ORDER_STATUSES)
            orders = orders.filter(working if q["open"] else ~working)
        if "symbol" in q:
            orders = orders.filter(symbol__name=q["symbol"])
        if "side" in q:
            orders = orders.filter(side=q["side"])
        if "since" in q:
            orders = orders.filter(created_at__gte=q["since"])
        if "until" in q:
            orders = orders.filter(created_at__lt=q["until"])
        rows, cursor = keyset_page(
            orders.select_related("account", "symbol"),
            limit=q["limit"], cursor=q.get("cursor"), ts_field="created_at",
        )  # fmt: skip
        return keyset_response(request, OrderSerializer(rows, many=True).data, cursor)

    @extend_schema(
        tags=["orders"],
        parameters=[_IDEMPOTENCY],
        request=OrderCreateSerializer,
        responses={
            201: OrderCreatedSerializer,
            400: ERRORS_400,
            401: error_response("401"),
            403: error_response("403"),
            404: error_response("404"),
            422: OrderRefusedSerializer,
        },
        examples=[
            OpenApiExample(
                "limit with bracket",
                value={"account": 1, "symbol": "BTC-USD", "side": "buy", "type": "limit",
                       "quantity": "0.1", "price": "49500", "stop_loss": "48000",
                       "take_profit": "52000"},
                request_only=True,
            ),
            OpenApiExample("market", request_only=True,
                           value={"account": 1, "symbol": "BTC-USD", "side": "buy",
                                  "quantity": "0.1"}),
            OpenApiExample("trailing stop", request_only=True,
                           value={"account": 1, "symbol": "BTC-USD", "side": "sell",
                                  "type": "trailing_stop", "quantity": "0.1",
                                  "trail_percent": "0.02"}),
            OpenApiExample("placed", value={"order": _ORDER_EXAMPLE, "risk": _VERDICT},
                           response_only=True, status_codes=["201"]),
            _REFUSED,
        ],
    )  # fmt: skip
    def post(self, request):
        body = OrderCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        account = account_or_404(request, body.validated_data["account"])
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 255:
            raise ValidationError({"Idempotency-Key": ["At most 255 characters."]})
        try:
            placed = order_place(
                account=account, request=body.to_request(), actor=request.user,
                idempotency_key=key or None,
            )  # fmt: skip
        except OrderRejected as exc:
            raise _bad_order(exc) from None
        except IdempotencyKeyReused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        headers = {"Idempotent-Replayed": "true"} if placed.replayed else {}
        if not placed.accepted:
            body = {"detail": "Refused by the pre-trade risk check.", "risk": placed.verdict}
            return Response(body, status=status.HTTP_422_UNPROCESSABLE_ENTITY, headers=headers)
        data = {"order": OrderSerializer(placed.order).data, "risk": placed.verdict}
        return Response(data, status=status.HTTP_201_CREATED, headers=headers)


def _order_or_404(request, pk: int) -> Order:
    """Return an order of a visible account; 404 for any other."""
    order = (
        Order.objects.filter(pk=pk, account__in=visible_accounts(request))
        .select_related("account", "symbol")
        .first()
    )
    if order is None:
        raise NotFound("No such order.")
    return order


class OrderDetailView(APIView):
    """One order; DELETE cancels it (as POST .../cancel)."""

    permission_classes = [ViewerReadsTraderWrites]

    @extend_schema(
        tags=["orders"],
        responses={200: OrderSerializer, **read_errors(not_found=True)},
        examples=[OpenApiExample("order", value=_ORDER_EXAMPLE, response_only=True)],
    )
    def get(self, request, pk: int):
        return Response(OrderSerializer(_order_or_404(request, pk)).data)

    @extend_schema(
        tags=["orders"],
        responses={
            202: OrderSerializer,
            409: _CONFLICT,
            **read_errors(not_found=True),
        },
        description="Cancel a working order: 202 with the order (a running engine cancels it "
        "at the venue within a second: `cancel_requested`); 409 when it is no longer working.",
    )
    def delete(self, request, pk: int):
        return _cancel(request, pk, "api")


def _cancel(request, pk: int, reason: str) -> Response:
    order = _order_or_404(request, pk)
    if not order_cancel(order=order, actor=request.user, reason=reason):
        return Response(
            {"detail": f"Order {pk} is {order.status}, not working."},
            status=status.HTTP_409_CONFLICT,
        )
    order.refresh_from_db()
    return Response(OrderSerializer(order).data, status=status.HTTP_202_ACCEPTED)


class OrderCancelView(APIView):
    """Cancel a working order (audited)."""

    permission_classes = [IsTrader]

    @extend_schema(
        tags=["orders"],
        request=CancelSerializer,
        responses={
            202: OrderSerializer,
            409: _CONFLICT,
            **read_errors(not_found=True),
        },
        examples=[OpenApiExample("cancel", value={"reason": "changed my mind"}, request_only=True)],
    )
    def post(self, request, pk: int):
        body = CancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return _cancel(request, pk, body.validated_data["reason"])


class PositionCloseView(APIView):
    """Close one position with a reduce-only market order (audited)."""

    permission_classes = [IsTrader]

    @extend_schema(
        tags=["orders"],
        request=None,
        responses={201: OrderSerializer, 409: _CONFLICT,
                   **read_errors(not_found=True)},
    )  # fmt: skip
    def post(self, request, pk: int, symbol: str):
        account = account_or_404(request, pk)
        order = position_close(account=account, symbol=symbol, actor=request.user)
        if order is None:
            return Response(
                {"detail": f"No open {symbol} position."}, status=status.HTTP_409_CONFLICT
            )
        return Response(OrderSerializer(order).data, status=status.HTTP_201_CREATED)


class FlattenSerializer(serializers.Serializer):
    """What flattening did: the working orders cancelled and the closing orders placed."""

    cancelled = serializers.IntegerField()
    orders = OrderSerializer(many=True)


class AccountFlattenView(APIView):
    """Cancel every working order and close every position of an account (audited)."""

    permission_classes = [IsTrader]

    @extend_schema(
        tags=["orders"],
        request=None,
        responses={202: FlattenSerializer, **read_errors(not_found=True)},
    )
    def post(self, request, pk: int):
        account = account_or_404(request, pk)
        working = account.orders.filter(status__in=OPEN_ORDER_STATUSES).count()
        orders = account_flatten(account=account, actor=request.user)
        data = {"cancelled": working, "orders": OrderSerializer(orders, many=True).data}
        return Response(data, status=status.HTTP_202_ACCEPTED)
