"""``manage.py runtrader --paper``: the real-time trading engine (with --serve, the web app too)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from marketdata.adapters.base import FeedAuthError, FeedError
from marketdata.feeds import LIVE_SOURCES
from marketdata.management.commands.ingest import feed_for_command, parse_symbols
from risk.engine.enforcer import stop_rules
from risk.engine.errors import StopConfigError
from trading.engine.errors import StrategyConfigError
from trading.engine.strategies import available_strategies
from trading.models import Account
from trading.runtime import RuntimeConfig, TradingRuntime
from trading.selectors import live_trading_blockers_for, live_venue_for


def parse_params(items: list[str]) -> dict[str, object]:
    """Turn ``key=value`` strings into a dict with numbers parsed."""
    params: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--param expects key=value, got {item!r}")
        value: object = raw.strip()
        for cast in (int, Decimal):
            try:
                value = cast(raw)
                break
            except (ValueError, ArithmeticError):
                continue
        if raw.lower() in {"true", "false"}:
            value = raw.lower() == "true"
        params[key.strip()] = value
    return params


class Command(BaseCommand):
    help = "Run the real-time trading engine: feed → bars → strategy → risk → OMS → venue."

    def add_arguments(self, parser) -> None:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--paper", action="store_true", help="Paper trading (the default)")
        mode.add_argument(
            "--live",
            action="store_true",
            help="Live trading: needs LIVE_TRADING=true, keys and a live account",
        )
        parser.add_argument("--feed", choices=LIVE_SOURCES, default="sim")
        parser.add_argument("--symbols", default="BTC-USD,ETH-USD")
        parser.add_argument("--strategy", help=f"One of: {', '.join(available_strategies())}")
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--account", default=settings.DEFAULT_ACCOUNT)
        parser.add_argument("--timeframe", default="1m", help="Bar timeframe strategies trade on")
        parser.add_argument("--duration", type=float, help="Stop after this many seconds")
        parser.add_argument(
            "--speed",
            type=float,
            default=1.0,
            help="Simulated market speed (0 = as fast as possible)",
        )
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--url", help="Override the feed URL")
        parser.add_argument("--api-key", help="Override the feed API key")
        parser.add_argument(
            "--serve",
            metavar="HOST:PORT",
            help="Also serve the dashboard, admin, API and WebSockets",
        )
        parser.add_argument(
            "--model",
            help="ML model name to run (default: any active model "
            "for the symbols and timeframe; used by model_signal)",
        )
        parser.add_argument(
            "--no-models", action="store_true", help="Do not run ML models even with model_signal"
        )
        parser.add_argument(
            "--stop-loss",
            type=Decimal,
            metavar="FRACTION",
            help="Close any position this far below (long) / above entry",
        )
        parser.add_argument(
            "--trailing-stop",
            type=Decimal,
            metavar="FRACTION",
            help="Close any position this far from its best price",
        )
        parser.add_argument(
            "--atr-stop",
            type=Decimal,
            metavar="K",
            help="Trailing stop K x ATR(14, 1m bars) from the best price",
        )
        parser.add_argument(
            "--max-hold",
            type=float,
            metavar="SECONDS",
            help="Close any position held longer than this",
        )
        parser.add_argument("--snapshot-interval", type=float, default=10.0)
        parser.add_argument("--heartbeat-interval", type=float, default=15.0)

    def handle(self, *args, **options) -> None:
        account = self._account(options)
        symbols = parse_symbols(options["symbols"])
        strategy = options["strategy"]
        if strategy and strategy not in available_strategies():
            raise CommandError(
                f"unknown strategy {strategy!r}; choose one of {', '.join(available_strategies())}"
            )
        feed = feed_for_command(options["feed"], symbols, options)
        config = RuntimeConfig(
            account=account.name,
            symbols=symbols,
            feed=options["feed"],
            strategy=strategy,
            params=parse_params(options["param"]),
            timeframe=options["timeframe"],
            duration=options["duration"],
            snapshot_interval=options["snapshot_interval"],
            heartbeat_interval=options["heartbeat_interval"],
            stop_rules=self._stop_rules(options),
            model=options["model"],
            use_models=not options["no_models"]
            and (strategy == "model_signal" or bool(options["model"])),
            stop_options={
                k: options[k]
                for k in ("stop_loss", "trailing_stop", "atr_stop", "max_hold")
                if options[k] is not None
            },
        )
        try:
            live = live_venue_for(account=account) if options["live"] else None
            summary = asyncio.run(self._run(config, feed, options["serve"], live))
        except StrategyConfigError as exc:
            raise CommandError(f"strategy: {exc}") from exc
        except FeedAuthError as exc:
            raise CommandError(f"feed authentication failed: {exc}") from exc
        except FeedError as exc:
            raise CommandError(f"feed failed: {exc}") from exc
        self.stdout.write(" ".join(f"{k}={v}" for k, v in summary.as_dict().items()))

    def _stop_rules(self, options) -> list:
        try:
            return stop_rules(
                stop_loss=options["stop_loss"],
                trailing=options["trailing_stop"],
                atr_multiple=options["atr_stop"],
                max_hold=options["max_hold"],
            )
        except StopConfigError as exc:
            raise CommandError(f"stops: {exc}") from exc

    def _account(self, options) -> Account:
        try:
            account = Account.objects.get(name=options["account"])
        except Account.DoesNotExist as exc:
            raise CommandError(
                f"no account {options['account']!r}: run `manage.py bootstrap` "
                "or create it in the admin"
            ) from exc
        if options["live"]:
            blockers = live_trading_blockers_for(account=account)
            if blockers:
                raise CommandError("refusing to trade live: " + "; ".join(blockers))
        elif account.mode == "live":
            self.stderr.write(f"account {account.name!r} is live; trading it on PAPER (--paper)")
        return account

    async def _run(self, config: RuntimeConfig, feed, serve: str | None, live=None):
        from channels.layers import get_channel_layer

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runtime = TradingRuntime(config, feed, channel_layer=get_channel_layer(), live=live)
        server = _embedded_server(serve) if serve else None
        server_task = asyncio.create_task(server.serve()) if server else None
        if server:
            self.stdout.write(f"serving http://{serve}/ (dashboard), /admin/, /api/docs/")
        try:
            return await runtime.run(stop)
        finally:
            if live is not None:
                await live.close()
            if server is not None:
                server.should_exit = True
                await asyncio.gather(server_task, return_exceptions=True)


def _embedded_server(address: str):
    """Return a uvicorn server for the ASGI app that leaves signal handling to runtrader."""
    import uvicorn

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise CommandError(f"--serve expects HOST:PORT, got {address!r}")

    class EmbeddedServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            yield

    config = uvicorn.Config(
        "rrr_site.asgi:application",
        host=host or "127.0.0.1",
        port=int(port),
        log_level="warning",
        lifespan="off",
    )
    return EmbeddedServer(config)
