"""Calendar-true figures: periods per year from the bars' own timestamps, CAGR from elapsed
time, and Sharpe, Sortino, Calmar and volatility on that calendar."""

from __future__ import annotations

import math

import empyrical  # dev dependency: the reference figures
import numpy as np
import pandas as pd
import pytest

from backtesting.engine.calendars import elapsed_years, infer_calendar
from backtesting.engine.metrics import annualised_return, cagr, summarize
from backtesting.engine.runner import BacktestConfig, prepare_bars, run_backtest
from backtesting.engine.vectorised import run_vectorised
from tests.backtesting.engine.helpers import D
from trading.engine.strategies import create_strategy

NS = 1_000_000_000


def stamps(index: pd.DatetimeIndex) -> np.ndarray:
    return index.tz_convert("UTC").asi8.astype(np.int64)


def equity_days(start: str, end: str) -> pd.DatetimeIndex:
    """Return NYSE-like sessions: weekdays less a few holidays."""
    days = pd.bdate_range(start, end, tz="UTC")
    holidays = pd.DatetimeIndex(["2021-01-01", "2021-07-05", "2021-12-24"], tz="UTC")
    return days.difference(holidays)


def test_daily_weekday_bars_are_equities_with_252_sessions() -> None:
    calendar = infer_calendar(stamps(equity_days("2021-01-01", "2021-12-31")), "1d")
    assert calendar.name.startswith("equities")
    assert calendar.periods_per_year == 252


def test_intraday_equity_sessions_count_their_bars() -> None:
    days = equity_days("2021-03-01", "2021-03-31")
    open_ = pd.Timedelta(hours=13, minutes=30)
    bars = [d + open_ + pd.Timedelta(minutes=5 * k) for d in days for k in range(78)]
    calendar = infer_calendar(stamps(pd.DatetimeIndex(bars)), "5m")
    assert calendar.name.startswith("equities")
    assert calendar.periods_per_year == 252 * 78  # 6.5 hours of 5-minute bars a session


def test_fx_hours_run_sunday_evening_to_friday_evening() -> None:
    hours = pd.date_range("2021-03-07 22:00", "2021-04-02 21:00", freq="h", tz="UTC")
    # Closed from Friday 22:00 to Sunday 22:00 UTC.
    weekday, hour = hours.weekday, hours.hour
    open_ = ~((weekday == 5) | ((weekday == 4) & (hour >= 22)) | ((weekday == 6) & (hour < 22)))
    calendar = infer_calendar(stamps(hours[open_]), "1h")
    assert calendar.name.startswith("fx")
    assert calendar.periods_per_year == 260 * 24


def test_bars_on_saturdays_are_a_24_7_market() -> None:
    minutes = pd.date_range("2024-01-01", periods=20_000, freq="min", tz="UTC")
    calendar = infer_calendar(stamps(minutes), "1m")
    assert calendar.name == "24/7"
    assert calendar.periods_per_year == 525_600


def test_elapsed_years_run_from_the_first_start_to_the_last_end() -> None:
    days = pd.date_range("2020-01-01", "2020-12-30", freq="D", tz="UTC")  # 365 daily bars
    assert elapsed_years(stamps(days), "1d") == pytest.approx(1.0)


def test_cagr_compounds_over_calendar_years_not_bar_counts() -> None:
    # Two years of equity sessions doubling the money: 41.4 % a year, whatever the bar count.
    days = equity_days("2021-01-01", "2022-12-31")
    equity = np.geomspace(1.0, 2.0, days.size + 1)[1:]
    years = elapsed_years(stamps(days), "1d")
    assert years == pytest.approx(2.0, abs=0.02)  # Monday 4 Jan 2021 to Saturday 31 Dec 2022
    assert cagr(equity, 252, initial=1.0, years=years) == pytest.approx(2 ** (1 / years) - 1)
    # The old figure: a 24/7 year of daily bars counts ~503 sessions as 1.38 years.
    wrong = cagr(equity, 365, initial=1.0)
    assert wrong > cagr(equity, 252, initial=1.0, years=years) + 0.1


def test_no_return_figure_falls_below_minus_100_percent() -> None:
    rng = np.random.default_rng(4)
    returns = rng.normal(-0.004, 0.05, 400)  # loses almost everything
    equity = 100.0 * np.cumprod(1 + returns)
    out = summarize(equity, initial=100.0, periods_per_year=525_600, years=400 / 525_600)
    assert out["total_return"] > -1
    assert -1 <= out["annualised_return"] <= 0
    assert -1 <= out["cagr"] <= 0
    # The arithmetic mean × periods would be far below −100 %.
    assert returns.mean() * 525_600 < -1
    assert annualised_return(returns, 525_600) >= -1


def daily_equity_frame(n: int = 600, seed: int = 2) -> pd.DataFrame:
    days = equity_days("2021-01-01", "2023-12-31")[:n]
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0005, 0.015, days.size)))
    open_ = np.concatenate([[100.0], close[:-1]])
    return pd.DataFrame(
        {
            "ts": days,
            "symbol": "GOOG",
            "open": open_,
            "high": np.maximum(open_, close) * 1.005,
            "low": np.minimum(open_, close) * 0.995,
            "close": close,
            "volume": 1e6,
            "timeframe": "1d",
        }
    )


def test_backtests_of_daily_equities_annualise_with_252_sessions_on_both_paths() -> None:
    data = prepare_bars(daily_equity_frame())
    cfg = BacktestConfig(taker_fee_bps=D(10))
    params = {"fast": 5, "slow": 20}
    event = run_backtest(create_strategy("sma_cross", **params), data, cfg)
    vector = run_vectorised("sma_cross", data, params, cfg)
    assert event.calendar.periods_per_year == vector.calendar.periods_per_year == 252
    years = elapsed_years(data.ts, "1d")
    growth = float(event.final_equity / cfg.initial_cash)
    assert event.metrics["cagr"] == pytest.approx(growth ** (1 / years) - 1)
    r = event.returns().to_numpy()
    first = event.equity.iloc[0] / float(cfg.initial_cash) - 1
    r = np.concatenate([[first], r])
    assert event.metrics["volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(252))
    for key in ("cagr", "sharpe", "sortino", "calmar", "volatility", "exposure_time"):
        assert event.metrics[key] == pytest.approx(vector.metrics[key], rel=1e-6), key


def test_periods_per_year_given_overrides_the_inferred_calendar() -> None:
    data = prepare_bars(daily_equity_frame())
    cfg = BacktestConfig(periods_per_year=260)
    result = run_backtest(create_strategy("sma_cross", fast=5, slow=20), data, cfg)
    assert result.calendar.name == "given" and result.calendar.periods_per_year == 260


@pytest.mark.parametrize("periods", [252, 260 * 24, 525_600])
def test_figures_match_empyrical_on_the_same_returns(periods) -> None:
    rng = np.random.default_rng(periods)
    returns = rng.normal(0.0004, 0.012, 900)
    equity = 1000.0 * np.cumprod(1 + returns)
    years = 3.7  # elapsed calendar time, independent of the bar count
    ours = summarize(equity, initial=1000.0, periods_per_year=periods, years=years)
    series = pd.Series(returns)
    assert ours["volatility"] == pytest.approx(
        empyrical.annual_volatility(series, annualization=periods), rel=1e-12
    )
    assert ours["sharpe"] == pytest.approx(
        empyrical.sharpe_ratio(series, annualization=periods), rel=1e-12
    )
    assert ours["sortino"] == pytest.approx(
        empyrical.sortino_ratio(series, annualization=periods), rel=1e-9
    )
    assert ours["max_drawdown"] == pytest.approx(-empyrical.max_drawdown(series), rel=1e-12)
    # empyrical compounds over len(returns) / annualization years: give it the calendar's.
    calendar_factor = len(returns) / years
    assert ours["cagr"] == pytest.approx(
        empyrical.annual_return(series, annualization=calendar_factor), rel=1e-12
    )
    assert ours["calmar"] == pytest.approx(
        empyrical.calmar_ratio(series, annualization=calendar_factor), rel=1e-12
    )
    # Annualised return: the geometric mean over a year of bars (empyrical's annual_return).
    assert ours["annualised_return"] == pytest.approx(
        empyrical.annual_return(series, annualization=periods), rel=1e-9
    )


def test_a_weekday_of_minute_bars_cannot_show_a_weekend_and_stays_24_7() -> None:
    friday = pd.date_range("2024-03-01", periods=1200, freq="min", tz="UTC")
    assert infer_calendar(stamps(friday), "1m").name == "24/7"
    # The same hours over two weeks without Saturdays are FX.
    days = pd.bdate_range("2024-03-04", periods=10, tz="UTC")
    bars = [d + pd.Timedelta(minutes=k) for d in days for k in range(1440)]
    assert infer_calendar(stamps(pd.DatetimeIndex(bars)), "1m").name.startswith("fx")


def _days_and_counts_by_row(ts: np.ndarray) -> tuple[list[int], list[int]]:
    """The days with bars and their counts, read off every stamp (what the calendar reads)."""
    days, counts = np.unique(np.unique(ts) // (86_400 * NS), return_counts=True)
    return days.tolist(), counts.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_days_with_bars_are_the_stamps_days_and_counts(seed: int) -> None:
    """infer_calendar finds each day's bars by a binary search per day boundary: the same days
    (gaps, weekends and days before 1970 included) and counts as dividing every stamp."""
    from backtesting.engine.calendars import _days_with_bars

    rng = np.random.default_rng(seed)
    for start_day in (-3, 0, 18_000):
        step = int(rng.choice([60, 300, 3_600, 86_400]))
        ts = start_day * 86_400 * NS + np.arange(4_000, dtype=np.int64) * step * NS
        kept = np.sort(ts[rng.random(ts.size) < 0.4])
        for series in (ts, kept, kept[:1], kept[-2:]):
            days, counts = _days_with_bars(series)
            assert (days.tolist(), counts.tolist()) == _days_and_counts_by_row(series)
