"""Trading: accounts, orders, fills, positions, portfolio snapshots and strategy configs.

Money and quantities are exact ``Decimal`` (NUMERIC on PostgreSQL). The trading maths lives in
``trading.engine``; these tables are its durable record, from which a restart reloads state.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from marketdata.models import Symbol
from trading.choices import (
    AccountMode,
    Liquidity,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    Venue,
)
from trading.engine.buying_power import BuyingPowerPolicy, Margin

QTY = {"max_digits": 28, "decimal_places": 10}
MONEY = {"max_digits": 28, "decimal_places": 10}


class AccountQuerySet(models.QuerySet):
    """Accounts, narrowed to what a user may see."""

    def visible_to(self, user) -> AccountQuerySet:
        """Return the accounts ``user`` may watch: all for staff and superusers, else its grants."""
        if not getattr(user, "is_authenticated", False) or not user.is_active:
            return self.none()
        if user.is_staff or user.is_superuser:
            return self
        return self.filter(members=user)


class Account(models.Model):
    """A trading account: paper by default; live only when explicitly configured."""

    name = models.CharField(max_length=64, unique=True)
    mode = models.CharField(max_length=8, choices=AccountMode.choices, default=AccountMode.PAPER)
    venue = models.CharField(max_length=16, choices=Venue.choices, default=Venue.PAPER)
    base_currency = models.CharField(max_length=8, default="USD")
    initial_capital = models.DecimalField(**MONEY)
    cash = models.DecimalField(**MONEY)
    leverage = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        default=Decimal(1),
        validators=[MinValueValidator(Decimal(1))],
        help_text="Gross exposure may reach this multiple of equity; 1 = cash only, no borrowing",
    )
    buying_power_policy = models.CharField(
        max_length=8,
        choices=[(p.value, p.value.capitalize()) for p in BuyingPowerPolicy],
        default=BuyingPowerPolicy.REDUCE.value,
        help_text="An order that needs more buying power than the account has (fees included) "
        "is reduced to what is affordable, or rejected",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="trading_accounts",
        help_text="Users who may watch this account live; staff and superusers see every account",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(initial_capital__gte=0), name="account_initial_capital_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(mode="live") | Q(venue="paper"), name="account_paper_mode_paper_venue"
            ),
            models.CheckConstraint(
                condition=Q(leverage__gte=1), name="account_leverage_at_least_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.mode})"

    def margin(self) -> Margin:
        """Return the engine's buying-power setting for this account."""
        return Margin(Decimal(self.leverage), BuyingPowerPolicy(self.buying_power_policy))


class StrategyConfig(models.Model):
    """A configured strategy: registry name, parameters, symbols and the account it trades."""

    name = models.CharField(max_length=64, unique=True)
    strategy_class = models.CharField(max_length=128, help_text="Registry name, e.g. sma_cross")
    params = models.JSONField(default=dict, blank=True)
    symbols = models.JSONField(default=list, blank=True)
    timeframe = models.CharField(max_length=4, default="1m")
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="strategies"
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Refuse what ``--config NAME`` could not load, naming the field (the admin's form)."""
        from django.core.exceptions import ValidationError

        from trading.strategy_configs import strategy_config_check, strategy_config_problems

        problems = strategy_config_problems(self.strategy_class, self.params, self.symbols)
        if not problems:
            problems = strategy_config_check(self.strategy_class, self.params)
        if problems:
            raise ValidationError(problems)


class Order(models.Model):
    """An order and its lifecycle. ``client_order_id`` makes submission idempotent."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    symbol = models.ForeignKey(Symbol, on_delete=models.PROTECT, related_name="orders")
    client_order_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    venue_order_id = models.CharField(max_length=64, blank=True)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        help_text="Bracket entry or TWAP/VWAP parent",
    )
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    type = models.CharField(max_length=16, choices=OrderType.choices, default=OrderType.MARKET)
    time_in_force = models.CharField(
        max_length=3, choices=TimeInForce.choices, default=TimeInForce.GTC
    )
    quantity = models.DecimalField(**QTY)
    price = models.DecimalField(**MONEY, null=True, blank=True)
    stop_price = models.DecimalField(**MONEY, null=True, blank=True)
    trail_amount = models.DecimalField(**MONEY, null=True, blank=True)
    trail_percent = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    reduce_only = models.BooleanField(default=False)
    status = models.CharField(
        max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING, db_index=True
    )
    filled_quantity = models.DecimalField(**QTY, default=0)
    average_fill_price = models.DecimalField(**MONEY, null=True, blank=True)
    fees = models.DecimalField(**MONEY, default=0)
    strategy = models.CharField(max_length=64, blank=True)
    signal = models.CharField(max_length=128, blank=True)
    reject_reason = models.TextField(blank=True)
    cancel_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="Set by operators/API; the running engine cancels"
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0, filled_quantity__lte=F("quantity")),
                name="order_filled_within_quantity",
            ),
            models.CheckConstraint(
                condition=~Q(type__in=["limit", "stop_limit"])
                | Q(price__isnull=False, price__gt=0),
                name="order_limit_needs_price",
            ),
            models.CheckConstraint(
                condition=~Q(type__in=["stop", "stop_limit", "take_profit"])
                | Q(stop_price__isnull=False, stop_price__gt=0),
                name="order_stop_needs_stop_price",
            ),
            models.CheckConstraint(
                condition=~Q(type="trailing_stop")
                | Q(trail_amount__isnull=False, trail_amount__gt=0)
                | Q(trail_percent__isnull=False, trail_percent__gt=0),
                name="order_trailing_needs_trail",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "status"], name="order_account_status"),
            models.Index(fields=["account", "-created_at"], name="order_account_created"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol_id} {self.type} [{self.status}]"


class Fill(models.Model):
    """An execution against an order. A venue trade id is recorded once per order."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="fills")
    symbol = models.ForeignKey(Symbol, on_delete=models.PROTECT, related_name="fills")
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    quantity = models.DecimalField(**QTY)
    price = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY, default=0)
    liquidity = models.CharField(max_length=5, choices=Liquidity.choices, default=Liquidity.TAKER)
    venue_trade_id = models.CharField(max_length=64)
    ts = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["ts"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="fill_quantity_positive"),
            models.CheckConstraint(condition=Q(price__gt=0), name="fill_price_positive"),
            models.UniqueConstraint(fields=["order", "venue_trade_id"], name="fill_dedup_key"),
        ]
        indexes = [
            models.Index(fields=["account", "symbol", "ts"], name="fill_account_symbol_ts"),
            # The API's keyset pages of an account's fills: newest first by (ts, id).
            models.Index(fields=["account", "ts", "id"], name="fill_account_ts_id"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol_id} @ {self.price}"


class FillDay(models.Model):
    """Fills of an account in a symbol on one UTC day: count, fees, quantity and traded value.

    Kept by database triggers on ``trading_fill`` (migration 0008), in the statement and the
    transaction that write the fills, whoever writes them (the engine, the admin, COPY): the
    profit, stats and performance reads sum a few rows a day instead of every fill.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    symbol = models.ForeignKey(Symbol, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    fills = models.BigIntegerField(default=0)
    fees = models.DecimalField(max_digits=40, decimal_places=10, default=0)
    quantity = models.DecimalField(max_digits=40, decimal_places=10, default=0)
    # Sum of quantity * price: twenty places, as the product of two ten-place columns.
    notional = models.DecimalField(max_digits=60, decimal_places=20, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "symbol", "day"], name="fill_day_key"),
        ]
        indexes = [models.Index(fields=["account", "day"], name="fill_day_account_day")]

    def __str__(self) -> str:
        return f"{self.account_id}:{self.symbol_id} {self.day} fills={self.fills}"


class TradeTally(models.Model):
    """The checkpoint of an account's round-trip tally (the performance page's trade metrics).

    Kept by ``trading.trade_tally``: the last fill tallied, per symbol the last fill that closed
    a round trip and what it opened beyond the close (the fills after it are the open "tail",
    re-read from ``trading_fill``), and in ``TradeTallyTrips`` every trip closed up to there.
    ``version`` rises with every extension and guards it (a conditional update: two processes
    never both extend from the same checkpoint); ``generation`` rises when the trips are
    replaced (a reset after a late fill, a compaction), telling readers to read them all again.
    """

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="+")
    generation = models.BigIntegerField(default=0)
    version = models.BigIntegerField(default=0)
    last_ts = models.DateTimeField(null=True, blank=True)  # the last fill tallied (ts, id)
    last_fill = models.BigIntegerField(default=0)
    high_fill = models.BigIntegerField(default=0)  # the highest fill id tallied
    flats = models.JSONField(default=dict)  # symbol -> its cut (``trade_tally._Symbol.cut``)
    updated_at = models.DateTimeField(auto_now=True)
    # The trade figures of the checkpoint as the background refresh left them (what the page
    # shows, with their age): non-finite floats as the strings "inf", "-inf", "nan".
    figures = models.JSONField(null=True, blank=True)
    figures_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"tally of account {self.account_id} v{self.generation}.{self.version}"


class TradeTallyTrips(models.Model):
    """Round trips closed by one extension of a ``TradeTally``: ``trips`` packed records of
    (entry µs, exit µs, exit fill id, P&L, return) as little-endian int64 ×3 and float64 ×2."""

    tally = models.ForeignKey(TradeTally, on_delete=models.CASCADE, related_name="+")
    generation = models.BigIntegerField()
    version = models.BigIntegerField()
    trips = models.IntegerField()
    data = models.BinaryField()

    class Meta:
        indexes = [
            models.Index(fields=["tally", "generation", "version"], name="trade_tally_trips_key")
        ]

    def __str__(self) -> str:
        return f"{self.trips} trips of tally {self.tally_id} v{self.generation}.{self.version}"


class Position(models.Model):
    """Net position of an account in a symbol: signed quantity (short < 0), average entry."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="positions")
    symbol = models.ForeignKey(Symbol, on_delete=models.PROTECT, related_name="positions")
    quantity = models.DecimalField(**QTY, default=0)
    average_price = models.DecimalField(**MONEY, default=0)
    # Signed quantity × average entry, unrounded: what a restart continues from exactly.
    cost_basis = models.DecimalField(**MONEY, default=0)
    mark_price = models.DecimalField(**MONEY, null=True, blank=True)
    realized_pnl = models.DecimalField(**MONEY, default=0)
    unrealized_pnl = models.DecimalField(**MONEY, default=0)
    fees = models.DecimalField(**MONEY, default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["account", "symbol"]
        constraints = [
            models.UniqueConstraint(fields=["account", "symbol"], name="position_account_symbol"),
            models.CheckConstraint(
                condition=Q(average_price__gte=0), name="position_avg_price_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}:{self.symbol_id} {self.quantity} @ {self.average_price}"


class PortfolioSnapshot(models.Model):
    """Periodic valuation of an account: the equity curve of live and paper trading."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="snapshots")
    ts = models.DateTimeField()
    cash = models.DecimalField(**MONEY)
    positions_value = models.DecimalField(**MONEY, default=0)
    total_value = models.DecimalField(**MONEY)
    equity = models.DecimalField(**MONEY)
    gross_exposure = models.DecimalField(**MONEY, default=0)
    net_exposure = models.DecimalField(**MONEY, default=0)
    realized_pnl = models.DecimalField(**MONEY, default=0)
    unrealized_pnl = models.DecimalField(**MONEY, default=0)
    total_pnl = models.DecimalField(**MONEY, default=0)
    daily_pnl = models.DecimalField(**MONEY, default=0)
    total_return = models.FloatField(default=0.0)
    daily_return = models.FloatField(default=0.0)
    drawdown = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-ts"]
        constraints = [
            models.UniqueConstraint(fields=["account", "ts"], name="snapshot_account_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.ts:%Y-%m-%d %H:%M:%S} equity={self.equity}"


class OrderRequestKey(models.Model):
    """An ``Idempotency-Key`` of an order create: a retry with it answers the first result.

    Unique per (user, key): two concurrent requests with the same key cannot both create an
    order (the second waits for the first's row, then reads its stored answer).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="order_request_keys"
    )
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical request")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="request_keys")
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="request_keys"
    )
    status_code = models.PositiveSmallIntegerField(default=0)
    response = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="order_request_key_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key} -> {self.status_code}"


class AccountOwner(models.Model):
    """Who trades an account, with a fencing token (``epoch``) raised at every takeover.

    The engine that takes the account lock raises ``epoch`` (inside the lock) and every
    transaction that writes the account's orders, fills, cash or positions first checks that
    the epoch is still the one it took (``trading.persistence.AccountFence``): an engine whose
    lock was lost and taken by another can never write after the other started.
    """

    account = models.OneToOneField(
        Account, on_delete=models.CASCADE, primary_key=True, related_name="owner"
    )
    epoch = models.PositiveBigIntegerField(default=0)
    owner = models.CharField(max_length=200, blank=True, help_text="Process that took it last")
    acquired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.account_id} epoch {self.epoch} ({self.owner})"
