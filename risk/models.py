"""Risk: admin-editable limits and sizing policies, the events they raise, trading states."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from risk.choices import (
    LimitAction,
    LimitKind,
    LimitScope,
    RiskSeverity,
    SizingMethod,
    TradingStateChoice,
)
from trading.models import Account


class RiskLimit(models.Model):
    """One limit. Edited in the admin; a running engine reloads enabled limits within seconds.

    ``account`` is set for account scope; ``scope_value`` names the symbol or strategy for those
    scopes. Fractions (``*_pct``) are stored as fractions (0.20 = 20 %).
    """

    scope = models.CharField(max_length=16, choices=LimitScope.choices, default=LimitScope.GLOBAL)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.CASCADE, related_name="risk_limits"
    )
    scope_value = models.CharField(max_length=64, blank=True, help_text="Symbol or strategy")
    kind = models.CharField(max_length=32, choices=LimitKind.choices)
    value = models.DecimalField(max_digits=28, decimal_places=10)
    action = models.CharField(max_length=8, choices=LimitAction.choices, default=LimitAction.REJECT)
    enabled = models.BooleanField(default=True)
    params = models.JSONField(
        default=dict,
        blank=True,
        help_text='Extra settings, e.g. {"window_seconds": 60} or {"max_combined_pct": 0.5}',
    )
    description = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope", "kind"]
        constraints = [
            models.CheckConstraint(condition=Q(value__gte=0), name="risklimit_value_non_negative"),
            models.UniqueConstraint(
                fields=["scope", "account", "scope_value", "kind"],
                condition=Q(account__isnull=False),
                name="risklimit_unique_per_account_scope",
            ),
            models.UniqueConstraint(
                fields=["scope", "scope_value", "kind"],
                condition=Q(account__isnull=True),
                name="risklimit_unique_per_scope",
            ),
            models.CheckConstraint(
                condition=~Q(scope="account") | Q(account__isnull=False),
                name="risklimit_account_scope_has_account",
            ),
        ]

    def __str__(self) -> str:
        where = self.scope_value or (self.account.name if self.account_id else self.scope)
        return f"{self.kind}={self.value} [{where}]"


class RiskEvent(models.Model):
    """A rejection, reduction or breach: recorded, alerted and broadcast on the ``risk`` group."""

    ts = models.DateTimeField(db_index=True)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.CASCADE, related_name="risk_events"
    )
    limit = models.ForeignKey(
        RiskLimit, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    kind = models.CharField(max_length=32, help_text="Limit kind or monitor name")
    severity = models.CharField(
        max_length=8, choices=RiskSeverity.choices, default=RiskSeverity.WARNING
    )
    message = models.TextField()
    context = models.JSONField(default=dict, blank=True)
    acknowledged = models.BooleanField(default=False)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-ts"]
        indexes = [models.Index(fields=["account", "acknowledged", "-ts"])]

    def __str__(self) -> str:
        return f"{self.severity} {self.kind}: {self.message[:60]}"


class TradingState(models.Model):
    """Whether an account may trade: active, reducing (risk-reducing only) or halted."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="trading_state")
    state = models.CharField(
        max_length=8, choices=TradingStateChoice.choices, default=TradingStateChoice.ACTIVE
    )
    reason = models.CharField(max_length=200, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    changed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.account.name}: {self.state}"


class SizingPolicy(models.Model):
    """How an account's strategies size their entries; edited in the admin.

    The row with a blank ``strategy`` is the account's default; a row naming a strategy sizes
    that strategy alone. A running engine reloads edits within seconds. Without any row, every
    strategy sizes by its own ``fraction`` parameter (fixed fraction).
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="sizing_policies")
    strategy = models.CharField(
        max_length=64, blank=True, help_text="Strategy id; blank: every strategy of the account"
    )
    method = models.CharField(
        max_length=24, choices=SizingMethod.choices, default=SizingMethod.FIXED_FRACTION
    )
    fraction = models.DecimalField(
        max_digits=28,
        decimal_places=10,
        null=True,
        blank=True,
        help_text="Share of equity per position (the size for fixed fraction, the ceiling "
        "otherwise); blank: the strategy's own fraction parameter",
    )
    target_volatility = models.DecimalField(
        max_digits=28,
        decimal_places=10,
        default=Decimal("0.20"),
        help_text="Volatility target: annualised volatility of each position as a share of "
        "equity (0.20 = 20 %)",
    )
    lookback = models.PositiveIntegerField(
        default=60, help_text="Recent bars that estimate volatility and the Kelly fraction"
    )
    kelly_multiplier = models.DecimalField(
        max_digits=28, decimal_places=10, default=Decimal("0.5"), help_text="0.5 = half Kelly"
    )
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "strategy"]
        verbose_name_plural = "sizing policies"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "strategy"], name="sizingpolicy_one_per_account_strategy"
            ),
            models.CheckConstraint(
                condition=Q(fraction__isnull=True) | Q(fraction__gt=0),
                name="sizingpolicy_fraction_positive",
            ),
            models.CheckConstraint(
                condition=Q(target_volatility__gt=0), name="sizingpolicy_target_vol_positive"
            ),
            models.CheckConstraint(condition=Q(lookback__gte=2), name="sizingpolicy_lookback_2"),
            models.CheckConstraint(
                condition=Q(kelly_multiplier__gt=0), name="sizingpolicy_kelly_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account.name}/{self.strategy or '*'}: {self.method}"
