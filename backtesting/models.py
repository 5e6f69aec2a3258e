"""Backtesting: runs (single, or the parent of a sweep) and their trades."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from backtesting.choices import FillModel, OptimizeMethod, RunStatus

MONEY = {"max_digits": 28, "decimal_places": 10}


class BacktestRun(models.Model):
    """One backtest, or the parent that collects the children of a parameter sweep."""

    name = models.CharField(max_length=100, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="backtest_runs",
        help_text="Who asked for the run (API, dashboard, backtest --owner); its report is "
        "served to them and to admins. Empty: the command line without --owner (admins only)",
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    strategy = models.CharField(max_length=255)  # a name, or /abs/file.py:ClassName
    params = models.JSONField(default=dict, blank=True)
    symbols = models.JSONField(default=list)
    timeframe = models.CharField(max_length=4, default="1h")
    start = models.DateTimeField()
    end = models.DateTimeField()
    fill_model = models.CharField(
        max_length=16, choices=FillModel.choices, default=FillModel.NEXT_OPEN
    )
    fees_bps = models.DecimalField(max_digits=10, decimal_places=4, default=10)
    slippage_bps = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    initial_capital = models.DecimalField(**MONEY, default=100000)
    optimize = models.CharField(
        max_length=16, choices=OptimizeMethod.choices, default=OptimizeMethod.NONE, blank=True
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    progress = models.FloatField(default=0.0)
    task_group = models.CharField(max_length=64, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    periods_per_year = models.FloatField(
        null=True, blank=True, help_text="Bars per year for annualising; empty: the bars' calendar"
    )
    risk = models.JSONField(
        default=dict,
        blank=True,
        help_text="Risk checks attached: their source, the limits and buying power as they were "
        "when the run was created (empty: none)",
    )
    data_source = models.CharField(
        max_length=16,
        default="database",
        help_text="Where the bars came from: 'database' (observed on venues) or 'sim' (the "
        "simulated market's, stored marked simulated)",
    )
    stops = models.JSONField(
        default=dict,
        blank=True,
        help_text="Protective stops enforced by runtrader's stop enforcer: stop_loss, "
        "trailing_stop (fractions), atr_stop (ATR multiple), max_hold (seconds); empty: none",
    )
    equity_curve = models.JSONField(default=list, blank=True)
    task_options = models.JSONField(
        default=dict,
        blank=True,
        help_text="A sweep's or walk-forward's search options (space, objective, trials...) as "
        "its task got them: a worker that takes over a sweep whose parent died reruns it with them",
    )
    report_path = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="backtest_range_valid"),
            models.CheckConstraint(
                condition=Q(fees_bps__gte=0, slippage_bps__gte=0),
                name="backtest_costs_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0, progress__lte=1), name="backtest_progress_range"
            ),
            # A sweep's trial is one row per parameter set and range: a retried sweep, or a
            # second worker that took the sweep over, finds it instead of counting it twice.
            models.UniqueConstraint(
                fields=["parent", "params", "start", "end"],
                condition=Q(parent__isnull=False),
                name="backtest_trial_unique",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.strategy} {','.join(self.symbols)} {self.timeframe} #{self.pk} [{self.status}]"
        )


class BacktestTrade(models.Model):
    """A round trip (entry to exit) in a backtest."""

    run = models.ForeignKey(BacktestRun, on_delete=models.CASCADE, related_name="trades")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=5, help_text="long or short")
    quantity = models.DecimalField(**MONEY)
    entry_ts = models.DateTimeField()
    entry_price = models.DecimalField(**MONEY)
    exit_ts = models.DateTimeField(null=True, blank=True)
    exit_price = models.DecimalField(**MONEY, null=True, blank=True)
    pnl = models.DecimalField(**MONEY, default=0)
    return_pct = models.FloatField(default=0.0)
    fees = models.DecimalField(**MONEY, default=0)
    bars_held = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["run", "entry_ts"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="btrade_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.symbol} {self.entry_ts:%Y-%m-%d} pnl={self.pnl}"
