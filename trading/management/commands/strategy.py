"""``manage.py strategy new|list|check``: write, list and check users' own strategies."""

from __future__ import annotations

import json
import keyword
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from trading.engine.errors import StrategyConfigError

MAX_DAYS = 3660  # ten years of 1h bars; each cut of the checks replays them again
MAX_POINTS = 100


class Command(BaseCommand):
    help = "Write a strategy from a template, list the strategies, or check one for look-ahead."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        new = sub.add_parser("new", help="Write a commented template that runs as it is")
        new.add_argument("name", help="Class name, e.g. MyCross")
        new.add_argument("--style", choices=["signal", "event"], default="signal")
        new.add_argument("--dir", help="Folder (default: the first of STRATEGY_PATHS)")
        listing = sub.add_parser("list", help="Built-in and user strategies with parameters")
        listing.add_argument("--json", action="store_true")
        check = sub.add_parser(
            "check", help="Look-ahead checks and a short backtest on the simulated market"
        )
        check.add_argument("name", help="A strategy name or path/to/file.py:ClassName")
        check.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
        check.add_argument(
            "--days",
            type=int,
            help="Simulated 1h bars (days; default 20, or more for twice a signal strategy's "
            "live_window: the recursive check needs bars beyond the window)",
        )
        check.add_argument("--points", type=int, default=5, help="Cuts per check")

    def handle(self, *args, **options) -> None:
        action = options["action"]
        if action == "new":
            return self._new(options)
        if action == "list":
            return self._list(options["json"])
        return self._check(options)

    # ----------------------------------------------------------------- new

    def _new(self, options) -> None:
        from trading.engine.strategies import available_strategies
        from trading.strategy_templates import TEMPLATES

        name = options["name"]
        if not name.isidentifier() or keyword.iskeyword(name):
            raise CommandError(f"{name!r} is not a valid class name")
        if name.startswith("_"):  # the folders' scan skips private classes: it would never load
            raise CommandError(f"{name!r}: a strategy's class name cannot start with '_'")
        if name in available_strategies():  # --strategy NAME would run the built-in, not it
            raise CommandError(f"{name!r} is a built-in strategy's name; choose another")
        folder = Path(options["dir"] or settings.STRATEGY_PATHS[0]).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{_snake(name)}.py"
        if path.exists():
            raise CommandError(f"{path} exists; choose another name or remove it")
        path.write_text(TEMPLATES[options["style"]].format(name=name))
        self.stdout.write(f"wrote {path} ({options['style']} style): --strategy {name}")

    # ----------------------------------------------------------------- list

    def _list(self, as_json: bool) -> None:
        from trading.engine import user_strategies
        from trading.engine.strategies import STRATEGIES, available_strategies

        built_in = available_strategies()
        rows = [
            {
                "name": n,
                "source": "built-in",
                "style": _style(STRATEGIES[n]),
                "params": _params(STRATEGIES[n]),
            }
            for n in built_in
        ]
        found, errors = user_strategies.scan()
        rows += [
            {"name": u.name, "source": u.spec, "style": _style(u.cls), "params": _params(u.cls)}
            for u in found
        ]
        # --strategy NAME finds the built-in first: say so rather than run it silently instead.
        hidden = [
            f"{u.spec} is named {u.name!r} like a built-in strategy, so --strategy {u.name} runs "
            f"the built-in; rename the class, or give {u.spec}"
            for u in found
            if u.name in built_in
        ]
        if as_json:
            document = {"strategies": rows, "errors": errors, "hidden": hidden}
            self.stdout.write(json.dumps(document, default=str))
            return
        for row in rows:
            params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
            self.stdout.write(f"{row['name']:<22} {row['style']:<7} {row['source']}")
            self.stdout.write(f"    {params or '(no parameters)'}")
        for error in errors:
            self.stderr.write(f"not loaded: {error}")
        for warning in hidden:
            self.stderr.write(f"hidden: {warning}")

    # ----------------------------------------------------------------- check

    def _check(self, options) -> None:
        from backtesting.engine.errors import BacktestConfigError
        from backtesting.engine.runner import BacktestConfig, run_backtest
        from backtesting.services import BacktestInputError, bars_for
        from backtesting.strategy_checks import lookahead_reports
        from trading.engine.strategies import create_strategy, resolve_strategy, strategy_class
        from trading.management.commands.runtrader import parse_params

        if not 1 <= options["points"] <= MAX_POINTS:
            raise CommandError(f"--points must be 1..{MAX_POINTS}, got {options['points']}")
        if options["days"] is not None and not 2 <= options["days"] <= MAX_DAYS:
            raise CommandError(f"--days must be 2..{MAX_DAYS}, got {options['days']}")
        params = parse_params(options["param"])
        try:
            name = resolve_strategy(options["name"])
            create_strategy(name, **params)
        except StrategyConfigError as exc:
            raise CommandError(str(exc)) from exc
        start = datetime(2024, 1, 1, tzinfo=UTC)
        days = options["days"]
        if days is None:  # rows past the live window are the ones the recursive check can test
            window = int(getattr(strategy_class(name), "live_window", 0) or 0)
            days = min(365, max(20, math.ceil(2 * window / 24) + 1))  # a year at most
        try:
            bars, _ = bars_for(
                symbols=["BTC-USD"],
                timeframe="1h",
                start=start,
                end=start + timedelta(days=days),
                source="sim",
            )
        except BacktestInputError as exc:
            raise CommandError(str(exc)) from exc
        bars = bars[["ts", "symbol", "open", "high", "low", "close", "volume"]]
        try:
            reports = lookahead_reports(name, params, bars, n_points=options["points"])
            result = run_backtest(
                create_strategy(name, **params), bars, BacktestConfig(timeframe="1h")
            )
        except (StrategyConfigError, BacktestConfigError) as exc:
            raise CommandError(str(exc)) from exc
        for report in reports:
            self.stdout.write(("ok    " if report.ok else "FAIL  ") + report.message())
        first, last = float(bars["close"].iloc[0]), float(bars["close"].iloc[-1])
        initial = float(BacktestConfig().initial_cash)
        self.stdout.write(
            f"backtest on {len(bars)} simulated 1h bars: {len(result.orders)} orders, "
            f"return {float(result.final_equity) / initial - 1:+.2%} "
            f"(buy and hold {last / first - 1:+.2%})"
        )
        if not all(r.ok for r in reports):
            raise CommandError(f"{options['name']}: look-ahead found (see above)")


def _snake(name: str) -> str:
    out = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    return out or name


def _style(cls) -> str:
    from trading.engine.signal_strategy import SignalStrategy

    return "signal" if issubclass(cls, SignalStrategy) else "event"


def _params(cls) -> dict:
    declared = getattr(cls, "parameters", {}) or {}
    return {
        k: f"{v} ({declared[k].kind()})" if k in declared else v
        for k, v in dict(cls.default_params).items()
    }
