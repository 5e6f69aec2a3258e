"""bench/monitoring_overhead.py measures the runtime's own loop: its step is the runtime's
``_consume`` (driven by hand), and both modes place the same orders; with metrics the series
count what the loop did."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

BENCH = Path(__file__).resolve().parents[2] / "bench" / "monitoring_overhead.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("monitoring_overhead_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bench_runs_the_runtimes_loop_and_both_modes_do_the_same_work(bench, monkeypatch):
    symbols = ["BTC-USD", "ETH-USD"]
    trades = bench._trades(3000, symbols)
    monkeypatch.setattr(bench, "FLUSH_EVERY", 700)  # flushes inside the round too
    events_before = REGISTRY.get_sample_value("rrr_engine_events_total", {"account": "bench"})
    orders_before = REGISTRY.get_sample_value(
        "rrr_engine_tick_to_order_seconds_count", {"account": "bench"}
    )
    without = bench.engine_round(trades, symbols, False)
    with_metrics = bench.engine_round(trades, symbols, True)
    assert len(without) == len(with_metrics) > 250  # a bar a second per symbol, an order each
    events = REGISTRY.get_sample_value("rrr_engine_events_total", {"account": "bench"})
    assert events - (events_before or 0) == len(trades)  # counted by the runtime's _consume
    orders = REGISTRY.get_sample_value(
        "rrr_engine_tick_to_order_seconds_count", {"account": "bench"}
    )
    assert orders - (orders_before or 0) == len(with_metrics)


def test_the_loop_step_is_the_runtimes_consume(bench):
    from trading.runtime import TradingRuntime

    step, _, _, finish = bench.engine_loop(["BTC-USD"], True)
    sends = [cell.cell_contents for cell in step.__closure__
             if getattr(cell.cell_contents, "__name__", "") == "send"]  # fmt: skip
    assert [send.__self__.cr_code for send in sends] == [TradingRuntime._consume.__code__]
    finish()
