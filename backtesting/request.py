"""Check every ``backtest`` flag before anything is written; bad input is one clear error."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from backtesting.cli_options import stop_options
from backtesting.engine.errors import BacktestConfigError
from backtesting.risk_limits import OFF as RISK_OFF
from backtesting.risk_limits import risk_snapshot
from backtesting.services import (
    BacktestInputError,
    Costs,
    parse_space,
    strategy_check,
    sweep_check,
)
from marketdata.engine.constants import DEFAULT_SYMBOLS_BY_NAME
from marketdata.engine.events import TIMEFRAME_SECONDS
from marketdata.models import Symbol
from risk.engine.errors import StopConfigError
from trading.engine.errors import StrategyConfigError
from trading.engine.strategies import resolve_strategy

MAX_BARS_PER_SYMBOL = 5_000_000  # e.g. 1m bars over ~9.5 years; more is a typo, not a backtest
MAX_SYMBOLS = 50
MAX_COST_BPS = Decimal(10_000)  # 100 %: anything above is not a cost
MAX_CAPITAL = Decimal(10) ** 17  # BacktestRun.initial_capital holds 18 integer digits
MAX_MONTECARLO = 100_000
MAX_PERIODS_PER_YEAR = 366 * 86_400  # one-second bars around the clock
SYMBOL_NAME = re.compile(r"^[A-Z0-9][A-Z0-9._/-]{0,31}$")  # Symbol.name is 32 characters
SWEEPS = {"grid", "random", "genetic"}


def one_line(exc: BaseException) -> str:
    """Return an exception's message on one line (a command's error is one line)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def validated_request(options: dict[str, Any], start: datetime, end: datetime) -> dict[str, Any]:
    """Return ``backtest_run_create`` keyword arguments once every flag has been checked."""
    params = _params(options["param"])
    named, symbols = options.get("config"), options["symbols"]
    if named:  # a named parameter set (StrategyConfig): its strategy, parameters and symbols
        if options["strategy"]:
            raise BacktestInputError("give --config or --strategy, not both")
        from trading.selectors import strategy_config_named

        try:
            row = strategy_config_named(named)
        except LookupError as exc:
            raise BacktestInputError(f"--config: {exc.args[0]}") from exc
        options = {**options, "strategy": row.strategy_class}
        params = {**(row.params or {}), **params}  # --param overrides the stored set
        symbols = ",".join(row.symbols) if row.symbols else symbols
    try:  # a built-in, a class in STRATEGY_PATHS, or path/to/file.py:ClassName (made absolute)
        strategy = resolve_strategy(options["strategy"] or "")
    except StrategyConfigError as exc:
        raise BacktestInputError(f"--strategy: {exc}") from exc
    timeframe = _timeframe(options["timeframe"], start, end)
    strategy_check(strategy, params)
    _run_options(options)
    _search_options(strategy, options)
    return {
        "strategy": strategy,
        "params": params,
        "symbols": _symbols(symbols),
        "timeframe": timeframe,
        "start": start,
        "end": end,
        "costs": _costs(options),
        "optimize": options["optimize"] or "",
        "data_source": options.get("source") or "database",
    }


def _timeframe(value: str, start: datetime, end: datetime) -> str:
    if value not in TIMEFRAME_SECONDS:
        raise BacktestInputError(
            f"--timeframe must be one of {', '.join(TIMEFRAME_SECONDS)}, got {value!r}"
        )
    bars = (end - start).total_seconds() / TIMEFRAME_SECONDS[value]
    if bars > MAX_BARS_PER_SYMBOL:
        raise BacktestInputError(
            f"--start..--end holds {bars:,.0f} {value} bars per symbol; at most "
            f"{MAX_BARS_PER_SYMBOL:,} (shorten the range or use a longer --timeframe)"
        )
    return value


def _symbols(raw: str) -> list[str]:
    names = [s.strip().upper() for s in raw.split(",") if s.strip()]
    if not names:
        raise BacktestInputError("--symbols needs at least one symbol, e.g. BTC-USD,ETH-USD")
    if len(names) > MAX_SYMBOLS:
        raise BacktestInputError(f"--symbols: at most {MAX_SYMBOLS} symbols, got {len(names)}")
    bad = [n for n in names if not SYMBOL_NAME.match(n)]
    if bad:
        raise BacktestInputError(
            f"--symbols: {bad[0][:40]!r} is not a symbol name (letters, digits, -._/, at most 32)"
        )
    if len(set(names)) != len(names):
        raise BacktestInputError("--symbols lists a symbol twice")
    known = set(Symbol.objects.filter(name__in=names).values_list("name", flat=True))
    unknown = [n for n in names if n not in known and n not in DEFAULT_SYMBOLS_BY_NAME]
    if unknown:
        raise BacktestInputError(
            f"--symbols: unknown symbol {', '.join(unknown)} (not in the database and not "
            f"simulated; the simulator has {', '.join(DEFAULT_SYMBOLS_BY_NAME)})"
        )
    return names


def _params(items: list[str]) -> dict[str, Any]:
    # runtrader's module loads the live feeds and ingestion (~0.8 s): only its parser is needed.
    from trading.management.commands.runtrader import parse_params

    try:
        params = parse_params(items)
    except CommandError as exc:
        raise BacktestInputError(str(exc)) from exc
    for key, value in params.items():
        if isinstance(value, Decimal) and not value.is_finite():
            raise BacktestInputError(f"--param {key}: must be a finite number, got {value}")
    return params


def _costs(options: dict[str, Any]) -> Costs:
    fees = _decimal(options["fees_bps"], "--fees-bps")
    slippage = _decimal(options["slippage_bps"], "--slippage-bps")
    capital = _decimal(options["capital"], "--capital")
    for flag, value in (("--fees-bps", fees), ("--slippage-bps", slippage)):
        if not 0 <= value <= MAX_COST_BPS:
            raise BacktestInputError(f"{flag} must be between 0 and {MAX_COST_BPS}, got {value}")
    if not 0 < capital < MAX_CAPITAL:
        raise BacktestInputError(f"--capital must be > 0 and < {MAX_CAPITAL:.0e}, got {capital}")
    return Costs(
        options["fill"],
        fees,
        slippage,
        capital,
        _periods_per_year(options),
        _risk(options),
        _stops(options),
    )


def _stops(options: dict[str, Any]) -> dict[str, Any]:
    """Return the stop flags given, once runtrader's rules accept them."""
    given = stop_options(options)
    try:
        Costs(stops=given).config("1h")
    except (StopConfigError, BacktestConfigError) as exc:
        raise BacktestInputError(f"stops: {exc}") from exc
    if given.get("max_hold") is not None and not float(given["max_hold"]) > 0:
        raise BacktestInputError(f"--max-hold must be > 0 seconds, got {given['max_hold']}")
    return given


def _periods_per_year(options: dict[str, Any]) -> float | None:
    raw = options.get("periods_per_year")
    if raw is None:
        return None
    value = _decimal(raw, "--periods-per-year")
    if not 0 < value <= MAX_PERIODS_PER_YEAR:
        raise BacktestInputError(
            f"--periods-per-year must be > 0 and at most {MAX_PERIODS_PER_YEAR:,}, got {raw}"
        )
    return float(value)


def _risk(options: dict[str, Any]) -> dict[str, Any]:
    """Return the risk snapshot the run attaches (``--risk-account`` / ``--no-risk``)."""
    named = options.get("risk_account")
    if options.get("no_risk"):
        if named:
            raise BacktestInputError("--no-risk and --risk-account exclude each other")
        return dict(RISK_OFF)
    try:
        return risk_snapshot(account=named or settings.DEFAULT_ACCOUNT, explicit=bool(named))
    except BacktestConfigError as exc:
        raise BacktestInputError(str(exc)) from exc


def _decimal(raw: str, flag: str) -> Decimal:
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation as exc:
        raise BacktestInputError(f"{flag} must be a number, got {raw!r}") from exc
    if not value.is_finite():
        raise BacktestInputError(f"{flag} must be a finite number, got {raw!r}")
    return value


def _run_options(options: dict[str, Any]) -> None:
    if not 0 <= options["montecarlo"] <= MAX_MONTECARLO:
        raise BacktestInputError(
            f"--montecarlo must be between 0 and {MAX_MONTECARLO}, got {options['montecarlo']}"
        )
    report = options["report"]
    if report and Path(report).suffix.lower() not in (".html", ".htm"):
        raise BacktestInputError(f"--report must end in .html, got {report!r}")


def _search_options(strategy: str, options: dict[str, Any]) -> None:
    method = options["optimize"]
    if method == "walkforward":
        train, test = options["train_bars"], options["test_bars"]
        if not train or not test:
            raise BacktestInputError("walkforward needs --train-bars and --test-bars")
        if train < 2 or test < 1:
            raise BacktestInputError("walkforward needs --train-bars >= 2 and --test-bars >= 1")
    if method not in SWEEPS and method != "walkforward":
        return
    sweep_check(
        strategy=strategy,
        method=method if method in SWEEPS else "grid",  # each window searches the grid
        space=parse_space(strategy, options["space"]),
        n_iter=options["trials"],
        objective=options["objective"],
    )
