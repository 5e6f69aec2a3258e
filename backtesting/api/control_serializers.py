"""Serializers of the backtest control endpoints: create (as ``backtest``'s flags), state."""

from __future__ import annotations

from rest_framework import serializers

from backtesting.choices import FillModel, RunStatus
from backtesting.request import MAX_MONTECARLO, MAX_SYMBOLS
from marketdata.data_source import DATA_SOURCES
from rrr_site.api.strategy_names import strategy_name_check

MAX_TRIALS = 1000
METHODS = ("grid", "random", "genetic", "walkforward")
ANY_NUMBER = {"max_digits": 40, "decimal_places": 20, "required": False}


class BacktestCreateSerializer(serializers.Serializer):
    """A backtest request: each field is the ``manage.py backtest`` flag of the same name."""

    def validate_strategy(self, value: str) -> str:
        return strategy_name_check(value)  # never a file path on the server (imported = run)

    strategy = serializers.CharField(max_length=64, help_text="A registered strategy")
    symbols = serializers.ListField(
        child=serializers.CharField(max_length=32), min_length=1, max_length=MAX_SYMBOLS
    )
    timeframe = serializers.CharField(max_length=4, default="1h")
    start = serializers.DateTimeField(help_text="ISO-8601; UTC when no offset is given")
    end = serializers.DateTimeField()
    params = serializers.DictField(
        child=serializers.JSONField(), required=False, help_text="Strategy parameters"
    )
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    fill = serializers.ChoiceField(choices=FillModel.choices, default=FillModel.NEXT_OPEN)
    fees_bps = serializers.DecimalField(**ANY_NUMBER, help_text="Default 10")
    slippage_bps = serializers.DecimalField(**ANY_NUMBER, help_text="Default 0")
    capital = serializers.DecimalField(**ANY_NUMBER, help_text="Default 100000")
    periods_per_year = serializers.DecimalField(**ANY_NUMBER)
    risk_account = serializers.CharField(
        max_length=64, required=False, help_text="One of your accounts: its risk limits apply"
    )
    no_risk = serializers.BooleanField(default=False)
    stop_loss = serializers.DecimalField(**ANY_NUMBER)
    trailing_stop = serializers.DecimalField(**ANY_NUMBER)
    atr_stop = serializers.DecimalField(**ANY_NUMBER)
    max_hold = serializers.FloatField(required=False, help_text="Seconds")
    source = serializers.ChoiceField(choices=DATA_SOURCES, default="database")
    allow_in_sample = serializers.BooleanField(default=False)
    optimize = serializers.ChoiceField(choices=[(m, m) for m in METHODS], required=False)
    space = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=20,
        help_text="NAME=LO:HI[:STEP] or NAME=a,b,c (default: the strategy's own space)",
    )  # fmt: skip
    objective = serializers.CharField(max_length=32, default="sharpe")
    trials = serializers.IntegerField(min_value=1, max_value=MAX_TRIALS, default=20)
    train_bars = serializers.IntegerField(min_value=2, max_value=10_000_000, required=False)
    test_bars = serializers.IntegerField(min_value=1, max_value=10_000_000, required=False)
    anchored = serializers.BooleanField(default=False)
    montecarlo = serializers.IntegerField(min_value=0, max_value=MAX_MONTECARLO, default=0)

    def validate_params(self, value: dict) -> dict:
        for key, item in value.items():
            if not key or isinstance(item, dict | list) or item is None:
                raise serializers.ValidationError(f"{key!r}: a number, text or true/false")
        return value


class BacktestQueuedSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The run's id")
    status = serializers.ChoiceField(choices=RunStatus.choices)
    task = serializers.CharField(help_text="The django-q2 task id")
    status_url = serializers.CharField()


class BacktestStateSerializer(serializers.Serializer):
    """A run's state: cheap to poll while it runs."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    progress = serializers.FloatField(help_text="0..1")
    optimize = serializers.CharField()
    trials = serializers.IntegerField(help_text="Trials of a sweep recorded so far")
    trials_done = serializers.IntegerField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
