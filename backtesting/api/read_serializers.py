"""Serializers of stored backtest runs (reads)."""

from __future__ import annotations

from rest_framework import serializers

from backtesting.choices import RunStatus
from backtesting.models import BacktestRun, BacktestTrade
from rrr_site.api.pagination import KeysetQuery

HEADLINE = ("total_return", "sharpe", "max_drawdown", "trades")


class BacktestListQuery(KeysetQuery):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    strategy = serializers.CharField(max_length=64, required=False)
    sweep = serializers.IntegerField(
        min_value=1, max_value=2**63 - 1, required=False, help_text="Trials of this sweep"
    )


class BacktestRunSerializer(serializers.ModelSerializer):
    """A run's settings, state and headline figures."""

    headline = serializers.SerializerMethodField(help_text="total_return, sharpe, max_drawdown")

    class Meta:
        model = BacktestRun
        fields = [
            "id", "name", "parent", "strategy", "symbols", "timeframe", "start", "end",
            "fill_model", "fees_bps", "slippage_bps", "initial_capital", "optimize", "status",
            "progress", "error", "created_at", "started_at", "finished_at", "headline",
        ]  # fmt: skip

    def get_headline(self, run: BacktestRun) -> dict[str, float | None]:
        metrics = run.metrics if isinstance(run.metrics, dict) else {}
        return {key: metrics.get(key) for key in HEADLINE}


class BacktestTradeSerializer(serializers.ModelSerializer):
    class Meta:
        model = BacktestTrade
        fields = [
            "symbol", "side", "quantity", "entry_ts", "entry_price", "exit_ts", "exit_price",
            "pnl", "return_pct", "fees", "bars_held",
        ]  # fmt: skip


class BacktestDetailSerializer(BacktestRunSerializer):
    """A run with every metric (buy-and-hold beside them), its trades and equity curve."""

    metrics = serializers.JSONField(help_text="Every metric; `buy_and_hold` is the baseline")
    equity_curve = serializers.JSONField(help_text="The stored (thinned) equity curve")
    trades = BacktestTradeSerializer(many=True, source="api_trades")
    trades_total = serializers.IntegerField(source="api_trades_total")
    report_url = serializers.SerializerMethodField()

    class Meta(BacktestRunSerializer.Meta):
        fields = BacktestRunSerializer.Meta.fields + [
            "params", "periods_per_year", "metrics", "equity_curve", "trades", "trades_total",
            "report_url",
        ]  # fmt: skip

    def get_report_url(self, run: BacktestRun) -> str | None:
        """The HTML report (served to its owner by the report endpoint), when one was written."""
        if not run.report_path:
            return None
        request = self.context["request"]
        return request.build_absolute_uri(f"/api/v1/backtests/{run.pk}/report")
