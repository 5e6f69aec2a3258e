"""``backtest`` never invents data, refuses in-sample model runs, and takes runtrader's stops."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from backtesting.models import BacktestRun, BacktestTrade
from marketdata.models import Bar
from models_ml.models import MLModel, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)
RANGE = ["--symbols", "BTC-USD", "--timeframe", "1h", "--start", "2024-01-01",
         "--end", "2024-01-15"]  # fmt: skip


def backtest(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("backtest", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_missing_bars_exit_non_zero_saying_how_to_get_them_and_store_nothing():
    with pytest.raises(CommandError) as caught:
        backtest("--strategy", "sma_cross", *RANGE)
    assert "backfill --source" in str(caught.value) and "--source sim" in str(caught.value)
    assert not Bar.objects.exists()
    run = BacktestRun.objects.get()
    assert run.status == "failed" and run.data_source == "database"


def test_source_sim_runs_on_bars_stored_marked_simulated():
    out, _ = backtest("--strategy", "sma_cross", *RANGE, "--source", "sim", "--json")
    run = BacktestRun.objects.get()
    assert run.status == "completed" and run.data_source == "sim"
    assert run.metrics["data"] == {"BTC-USD": "simulated"}
    assert Bar.objects.filter(simulated=False).count() == 0
    assert Bar.objects.filter(simulated=True).count() == 14 * 24


def test_stop_flags_reach_the_run_and_close_positions_through_the_enforcer():
    args = ["--strategy", "sma_cross", *RANGE, "--source", "sim", "--param", "fast=3",
            "--param", "slow=8", "--no-risk"]  # fmt: skip
    backtest(*args)
    backtest(*args, "--stop-loss", "0.002", "--max-hold", "7200")
    plain, stopped = BacktestRun.objects.order_by("pk")
    assert stopped.stops == {"stop_loss": "0.002", "max_hold": 7200.0}
    assert plain.stops == {}
    # Held at most two hours (2 bars) plus the exit's fill bar; without stops, longer holds.
    held = list(BacktestTrade.objects.filter(run=stopped).values_list("bars_held", flat=True))
    plain_held = list(BacktestTrade.objects.filter(run=plain).values_list("bars_held", flat=True))
    assert max(held) <= 3 < max(plain_held)


def test_bad_stop_flags_are_refused_before_anything_is_written():
    with pytest.raises(CommandError, match="stop percent"):
        backtest("--strategy", "sma_cross", *RANGE, "--source", "sim", "--stop-loss", "1.5")
    assert not BacktestRun.objects.exists()


def _active_model(start: datetime, end: datetime) -> MLModel:
    model = MLModel.objects.create(
        name="BTC-USD-lstm", model_type="lstm", version=1, symbols=["BTC-USD"],
        timeframe="1h", active=True, metrics={"has_edge": True},
    )  # fmt: skip
    TrainingRun.objects.create(
        model=model, model_type="lstm", symbols=["BTC-USD"], timeframe="1h", start=start,
        end=end, status="completed",
    )  # fmt: skip
    return model


def test_model_signal_over_the_models_training_range_is_refused_without_allow_in_sample():
    _active_model(datetime(2023, 12, 1, tzinfo=UTC), datetime(2024, 1, 10, tzinfo=UTC))
    with pytest.raises(CommandError, match="in-sample.*--allow-in-sample"):
        backtest("--strategy", "model_signal", *RANGE, "--source", "sim")
    assert not BacktestRun.objects.exists()
    # Allowed: it goes ahead (and fails later here: the model has no artifact), loudly flagged.
    err = StringIO()
    with pytest.raises((CommandError, FileNotFoundError)) as caught:
        call_command(
            "backtest", "--strategy", "model_signal", *RANGE, "--source", "sim",
            "--allow-in-sample", stdout=StringIO(), stderr=err,
        )  # fmt: skip
    assert "in-sample" not in str(caught.value)
    assert "IN-SAMPLE BACKTEST" in err.getvalue() and BacktestRun.objects.count() == 1


def test_model_signal_after_the_training_range_is_not_flagged():
    _active_model(datetime(2023, 10, 1, tzinfo=UTC), datetime(2023, 12, 1, tzinfo=UTC))
    err = StringIO()
    with pytest.raises((CommandError, FileNotFoundError)) as caught:  # no artifact
        call_command(
            "backtest", "--strategy", "model_signal", *RANGE, "--source", "sim",
            stdout=StringIO(), stderr=err,
        )  # fmt: skip
    assert "in-sample" not in str(caught.value) and "IN-SAMPLE" not in err.getvalue()


def test_vectorised_runs_the_vectorised_path_and_gives_the_event_driven_trades():
    args = ["--strategy", "sma_cross", *RANGE, "--source", "sim", "--param", "fast=3",
            "--param", "slow=8", "--no-risk"]  # fmt: skip
    backtest(*args)
    out, _ = backtest(*args, "--vectorised")
    event, vector = BacktestRun.objects.order_by("pk")
    assert vector.metrics["engine"] == "vectorised" and "engine" not in event.metrics
    assert "engine           vectorised" in out

    def trips(run):
        return list(
            BacktestTrade.objects.filter(run=run)
            .order_by("entry_ts")
            .values_list("side", "entry_ts", "exit_ts", "quantity")
        )

    assert trips(vector) == trips(event) and len(trips(event)) > 2
    assert vector.metrics["trades"] == event.metrics["trades"]


def test_vectorised_refuses_what_it_cannot_reproduce_before_writing_anything():
    with pytest.raises(CommandError, match="risk limits.*--no-risk"):
        backtest("--strategy", "sma_cross", *RANGE, "--source", "sim", "--vectorised")
    with pytest.raises(CommandError, match="stops"):
        backtest("--strategy", "sma_cross", *RANGE, "--source", "sim", "--vectorised",
                 "--no-risk", "--stop-loss", "0.05")  # fmt: skip
    assert not BacktestRun.objects.exists()


def test_sweep_trials_carry_the_stops_of_their_parent():
    backtest("--strategy", "sma_cross", *RANGE, "--source", "sim", "--no-risk", "--optimize",
             "grid", "--space", "fast=3,4", "--space", "slow=8:9:2",
             "--stop-loss", "0.01")  # fmt: skip
    parent = BacktestRun.objects.get(parent__isnull=True)
    trials = list(BacktestRun.objects.filter(parent=parent))
    assert len(trials) == 2 and all(t.stops == {"stop_loss": "0.01"} for t in trials)
    assert all(t.status == "completed" and t.data_source == "sim" for t in trials)
