"""``manage.py runtrader --paper``: the real-time trading engine (with --serve, the web app too)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, close_old_connections

from marketdata.adapters.base import FeedAuthError, FeedError
from marketdata.constants import BASE_TIMEFRAMES, LIVE_SOURCES, RESAMPLED_TIMEFRAMES
from marketdata.management.commands.ingest import (
    check_speed,
    check_url,
    feed_for_command,
    parse_symbols,
)
from marketdata.sim_clock import WallClockBound, sim_start
from risk.engine.errors import StopConfigError
from rrr_site.locks import LockHeld, OwnerLock, lock_held, owner_label
from trading.engine.errors import StrategyConfigError
from trading.models import Account
from trading.selectors import live_trading_blockers_for, live_venue_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from trading.persistence import AccountFence
    from trading.runtime import RuntimeConfig, StrategySpec

# The strategies (numpy), runtime, feeds and storage (psycopg) load when the engine starts or the
# parser is built, not when another module imports parse_params.

# Timeframes the pipeline builds (from trades) or resamples; a strategy can trade on no other.
TRADABLE_TIMEFRAMES = (*BASE_TIMEFRAMES, *RESAMPLED_TIMEFRAMES)
# The feed that carries each live venue's own prices (Kraken has none here).
VENUE_FEEDS = {"binance": "binance", "coinbase": "coinbase"}
logger = logging.getLogger(__name__)
LOCK_CHECK_SECONDS = 5.0
LOCK_REGAIN_SECONDS = 60.0  # how long a lost account lock is retried before the engine stops
WORKER_RESTARTS = 5  # a task worker that keeps dying is given up on (and logged), not the engine
WORKER_RESTART_DELAY = 5.0
WORKER_STOP_TIMEOUT = 30.0
GC_YOUNG_OBJECTS = 10_000  # the collector's first threshold in an engine (Python's is 700)


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
        if isinstance(value, Decimal) and not value.is_finite():
            raise CommandError(f"--param {item!r}: the value must be a finite number")
        if raw.lower() in {"true", "false"}:
            value = raw.lower() == "true"
        params[key.strip()] = value
    return params


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float | Decimal):
        return "a number"
    return "text"


def check_strategy(strategy: str | None, params: dict[str, object]) -> None:
    """Build the strategy once with ``params`` so that a bad name, key or value fails now."""
    from trading.engine.strategies import create_strategy, strategy_class

    if strategy is None:
        if params:
            raise CommandError("--param needs --strategy (parameters belong to a strategy)")
        return
    try:  # a built-in, a class in STRATEGY_PATHS, or path/to/file.py:ClassName
        defaults = strategy_class(strategy).default_params
    except StrategyConfigError as exc:
        raise CommandError(str(exc)) from exc
    for key, value in params.items():
        if key in defaults and _kind(value) != _kind(defaults[key]):
            raise CommandError(
                f"--param {key}={value}: {strategy} expects {_kind(defaults[key])} for {key}"
            )
    try:
        create_strategy(strategy, **params)
    except StrategyConfigError as exc:
        raise CommandError(f"strategy: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise CommandError(f"strategy {strategy}: bad parameters ({exc})") from exc


def check_positive(value: float | None, flag: str, *, optional: bool = False) -> None:
    """Refuse a value that is not a finite number above zero (None only when ``optional``)."""
    if value is None and optional:
        return
    if value is None or not math.isfinite(value) or value <= 0:
        raise CommandError(f"{flag} must be a finite number of seconds above 0, got {value}")


def parse_serve_address(address: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` and check that this process can listen there."""
    host, sep, port_text = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise CommandError(f"--serve expects HOST:PORT with a port 1-65535, got {address!r}")
    port = int(port_text)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, sockaddr = infos[0]
        with socket.socket(family, kind, proto) as probe:
            # As uvicorn binds: SO_REUSEADDR, so a port in TIME_WAIT is not taken for busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
    except OSError as exc:
        why = exc.strerror or exc
        raise CommandError(f"--serve {address}: cannot listen there ({why})") from exc
    return host, port


def check_options(options: dict) -> None:
    """Refuse bad flags before anything is locked or written."""
    if options["timeframe"] not in TRADABLE_TIMEFRAMES:
        raise CommandError(
            f"--timeframe {options['timeframe']!r} is not supported; "
            f"use one of {', '.join(TRADABLE_TIMEFRAMES)}"
        )
    if options["allow_foreign_feed"] and not options["live"]:
        raise CommandError("--allow-foreign-feed only applies to --live")
    if not options["paper"] and not options["live"] and not settings.PAPER_TRADING:
        raise CommandError(
            "PAPER_TRADING=false: paper is not the default mode, say --paper or --live"
        )
    check_url(options["url"])
    check_speed(options["speed"])
    check_positive(options["duration"], "--duration", optional=True)
    check_positive(options["snapshot_interval"], "--snapshot-interval")
    check_positive(options["heartbeat_interval"], "--heartbeat-interval")
    if options["serve"]:
        parse_serve_address(options["serve"])
    from trading.runtime import write_outage_limit

    try:
        write_outage_limit(None)  # RRR_WRITE_OUTAGE_LIMIT, judged before anything starts
    except ValueError as exc:
        raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = "Run the real-time trading engine: feed → bars → strategy → risk → OMS → venue."

    def add_arguments(self, parser) -> None:
        from trading.engine.strategies import available_strategies

        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--paper",
            action="store_true",
            help="Paper trading (the default while PAPER_TRADING=true)",
        )
        mode.add_argument(
            "--live",
            action="store_true",
            help="Live trading: needs LIVE_TRADING=true, keys and a live account",
        )
        parser.add_argument(
            "--feed",
            choices=LIVE_SOURCES,
            help="Market data (default: sim; --live needs the venue's own feed)",
        )
        parser.add_argument(
            "--allow-foreign-feed",
            action="store_true",
            help="With --live: accept a feed that is not the venue's own prices (sim, polygon, "
            "another exchange). Orders then execute at prices the strategy never saw: "
            "testnets and rehearsals only",
        )
        parser.add_argument(
            "--symbols", default="BTC-USD,ETH-USD", help="Comma-separated symbols to trade"
        )
        parser.add_argument(
            "--strategy",
            action="append",
            default=[],
            help=f"One of: {', '.join(available_strategies())}; a class in STRATEGY_PATHS; "
            "or path/to/file.py:ClassName. Repeatable: several strategies trade the account, "
            "one that raises is stopped alone",
        )
        parser.add_argument(
            "--config",
            action="append",
            default=[],
            metavar="NAME",
            help="A named parameter set (StrategyConfig, edited in the admin): its strategy, "
            "parameters and symbols. Repeatable, and with --strategy: beside others a row "
            "trades under its name",
        )
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="Strategy parameter (repeatable), e.g. fast=10",
        )
        parser.add_argument(
            "--account",
            default=settings.DEFAULT_ACCOUNT,
            help="Account to trade (default: DEFAULT_ACCOUNT)",
        )
        parser.add_argument("--timeframe", default="1m", help="Bar timeframe strategies trade on")
        parser.add_argument("--duration", type=float, help="Stop after this many seconds")
        parser.add_argument(
            "--speed",
            type=float,
            default=1.0,
            help="Simulated market speed (0 = as fast as possible)",
        )
        parser.add_argument("--seed", type=int, default=42, help="Seed of the simulated feed")
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
            "--allow-other-symbol",
            action="store_true",
            help="Let --model predict symbols it was not trained on (refused without this flag)",
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
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="With --serve: do not host a django-q2 task worker (run `manage.py qcluster` "
            "yourself); by default --serve runs one, so --async backtests and training run",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            metavar="PORT",
            help="Serve this engine's Prometheus metrics on http://HOST:PORT/metrics "
            "(without --serve, which has /metrics already)",
        )
        parser.add_argument(
            "--metrics-host",
            default="127.0.0.1",
            help="Address for --metrics-port (default 127.0.0.1: this machine only)",
        )
        parser.add_argument(
            "--snapshot-interval",
            type=float,
            default=10.0,
            help="Seconds between stored portfolio snapshots (marks and equity)",
        )
        parser.add_argument(
            "--heartbeat-interval",
            type=float,
            default=15.0,
            help="Seconds between engine heartbeats (health and monitoring)",
        )

    @staticmethod
    def _named_config(options: dict, name: str, params: dict) -> tuple[str, dict, list[str]]:
        """Return the strategy, parameters and symbols of ``--config NAME``."""
        from trading.selectors import strategy_config_named

        try:
            row = strategy_config_named(name)
        except LookupError as exc:
            raise CommandError(f"--config: {exc.args[0]}") from exc
        # The row's account and timeframe are not defaults to trade elsewhere: an engine started
        # on another account (DEFAULT_ACCOUNT when --account is left out) or timeframe refuses.
        if row.account_id is not None and row.account.name != options["account"]:
            raise CommandError(
                f"--config {row.name}: it is for account {row.account.name!r}, not "
                f"{options['account']!r}; run it with --account {row.account.name}"
            )
        if row.timeframe and row.timeframe != options["timeframe"]:
            raise CommandError(
                f"--config {row.name}: it trades {row.timeframe} bars, not "
                f"{options['timeframe']}; run it with --timeframe {row.timeframe}"
            )
        symbols = [str(s).strip().upper() for s in row.symbols or [] if str(s).strip()]
        return row.strategy_class, {**(row.params or {}), **params}, symbols

    def _strategy_specs(
        self, options: dict, symbols: list[str], params: dict
    ) -> tuple[list[StrategySpec], list[str]]:
        """Return the strategies to run (``--strategy`` and ``--config``, each repeatable) and
        the symbols the engine trades.

        One strategy runs as before: under its own name, ``--param`` over its parameters, on a
        ``--config`` row's symbols if it has some. Several trade the one account side by side,
        each under its own id (a ``--config`` row's is its name), a row on its own symbols and
        the others on ``--symbols``; ``--param`` is refused (whose would it be?).
        """
        from trading.engine.strategies import resolve_strategy, strategy_class
        from trading.runtime import StrategySpec

        given = [("--strategy", name) for name in options["strategy"]]
        given += [("--config", name) for name in options["config"]]
        several = len(given) > 1
        if several and params:
            raise CommandError(
                "--param applies to one strategy; with several, give each its parameters in a "
                "--config row (StrategyConfig, edited in the admin)"
            )
        specs: list[StrategySpec] = []
        ids: dict[str, str] = {}
        traded: list[str] = []
        for flag, value in given:
            name, own, row_symbols = value, dict(params), []
            if flag == "--config":
                name, own, row_symbols = self._named_config(options, value, params)
            check_strategy(name, own)
            name = resolve_strategy(name)  # stored as any process can load it again
            sid = value if flag == "--config" and several else None
            shown = sid or getattr(strategy_class(name), "name", None) or name
            if shown in ids:
                raise CommandError(
                    f"{flag} {value}: strategy id {shown!r} is already given by {ids[shown]}; "
                    "one account runs each strategy once (for another parameter set of it, "
                    "give a --config row: it runs under the row's name)"
                )
            ids[shown] = f"{flag} {value}"
            if several:
                specs.append(StrategySpec(name, own, tuple(row_symbols), sid))
            else:
                specs.append(StrategySpec(name, own))
                symbols = row_symbols or symbols
            traded += row_symbols or symbols
        if not given:
            check_strategy(None, params)
        return specs, list(dict.fromkeys(traded)) if several else symbols

    def handle(self, *args, **options) -> None:
        from trading.runtime import RuntimeConfig

        check_options(options)
        symbols = parse_symbols(options["symbols"])
        params = parse_params(options["param"])
        specs, symbols = self._strategy_specs(options, symbols, params)
        strategy = specs[0].name if len(specs) == 1 else None
        stops = self._stop_rules(options)
        if options["model"] and not options["no_models"]:
            self._check_model_symbols(options["model"], symbols, options["allow_other_symbol"])
        account = self._account(options)
        options["feed"] = self._feed_source(account, options)
        config = RuntimeConfig(
            account=account.name,
            symbols=symbols,
            feed=options["feed"],
            strategy=strategy,
            params=specs[0].params if strategy else {},
            strategies=specs if len(specs) > 1 else [],
            timeframe=options["timeframe"],
            duration=options["duration"],
            snapshot_interval=options["snapshot_interval"],
            heartbeat_interval=options["heartbeat_interval"],
            stop_rules=stops,
            model=options["model"],
            use_models=not options["no_models"]
            and (any(s.name == "model_signal" for s in specs) or bool(options["model"])),
            stop_options={
                k: options[k]
                for k in ("stop_loss", "trailing_stop", "atr_stop", "max_hold")
                if options[k] is not None
            },
            speed=options["speed"],
        )
        if config.feed == "sim":
            config.sim_start = sim_start(options["speed"], options["duration"], datetime.now(UTC))
        busy = (
            f"account {account.name!r} is already being traded by another runtrader; "
            "stop that one first"
        )
        self._state_notice(account)
        metrics_server = self._metrics_server(options)
        try:
            # Held until the engine stops; the OS or the database frees it if we are killed.
            with lock_held(f"runtrader-account:{account.pk}", busy=busy) as lock:
                # Inside the lock and before any state is loaded: raise the account's epoch, so
                # a previous owner whose lock was cut can no longer write (its writes fence out).
                from trading.persistence import AccountFence

                try:
                    fence = AccountFence.take(account, owner_label())
                except OperationalError as exc:  # SQLite: another writer kept the lock
                    raise CommandError(fence_refused(account, exc)) from exc
                try:
                    summary = self._trade(config, symbols, options, account, lock)
                finally:
                    fence.release()
        except LockHeld as exc:
            raise CommandError(str(exc)) from None
        finally:
            if metrics_server is not None:
                metrics_server.shutdown()
        self.stdout.write(" ".join(f"{k}={v}" for k, v in summary.as_dict().items()))
        # The main thread's connection sat idle through the run: cut meanwhile (a failover,
        # pg_terminate_backend), it is checked and replaced here instead of failing the notice.
        close_old_connections()
        self._state_notice(account)

    def _state_notice(self, account: Account) -> None:
        """Say loudly when the account is not active (stored: it outlives this run)."""
        from trading.runtime_control import trading_state_notice

        notice = trading_state_notice(account=account)
        if notice:
            self.stdout.write(self.style.WARNING(notice))

    def _metrics_server(self, options):
        """Start the ``--metrics-port`` exporter, or return None when not asked for."""
        port = options["metrics_port"]
        if port is None:
            return None
        if not 0 < port < 65536:
            raise CommandError(f"--metrics-port must be 1-65535, got {port}")
        from monitoring.metrics import metrics_http_server

        try:
            server = metrics_http_server(options["metrics_host"], port)
        except OSError as exc:
            raise CommandError(
                f"--metrics-port: cannot listen on {options['metrics_host']}:{port} ({exc})"
            ) from exc
        self.stdout.write(f"metrics on http://{options['metrics_host']}:{port}/metrics")
        return server

    def _trade(self, config: RuntimeConfig, symbols, options, account: Account, lock):
        """Build the feed and venue, run the engine to its end; errors become CommandErrors."""
        from marketdata.feeds import SimulatedFeed
        from marketdata.storage import WriterFailed
        from trading.runtime import PersistenceFailed, WriteOutage

        feed = feed_for_command(options["feed"], symbols, options)
        if config.sim_start is not None:
            # A sped-up simulation starts in the past and never runs ahead of the wall clock.
            market = SimulatedFeed(
                symbols, seed=options["seed"], speed=options["speed"], start=config.sim_start
            )
            feed = WallClockBound(market)
            if config.sim_start < datetime.now(UTC) - timedelta(seconds=1):
                self.stdout.write(
                    f"simulated market from {config.sim_start:%Y-%m-%d %H:%M:%S} UTC at "
                    f"{options['speed']:g}x, held to the wall clock once it catches up"
                )
        try:
            live = live_venue_for(account=account) if options["live"] else None
            worker = TaskWorker() if options["serve"] and not options["no_worker"] else None
            return asyncio.run(self._run(config, feed, options["serve"], live, lock, worker))
        except StrategyConfigError as exc:
            raise CommandError(f"strategy: {exc}") from exc
        except FeedAuthError as exc:
            raise CommandError(f"feed authentication failed: {exc}") from exc
        except FeedError as exc:
            raise CommandError(f"feed failed: {exc}") from exc
        except WriterFailed as exc:
            raise CommandError(f"market-data writer failed: {exc}") from exc
        except WriteOutage as exc:
            # Its own message says how long writes failed, and why (not "not stored": the
            # shutdown stores what it holds when the database is back, and dumps the rest).
            raise CommandError(str(exc)) from exc
        except PersistenceFailed as exc:
            raise CommandError(f"trading state not stored: {exc}") from exc

    def _feed_source(self, account: Account, options) -> str:
        """Return the feed to trade on; --live refuses any but the venue's own unless allowed."""
        feed = options["feed"] or "sim"
        if not options["live"] or options["allow_foreign_feed"]:
            return feed
        own = VENUE_FEEDS.get(account.venue)
        if feed != own:
            need = f"--feed {own}" if own else "a feed of its own (there is none here)"
            raise CommandError(
                f"refusing to trade live on the {feed} feed: account {account.name!r} trades on "
                f"{account.venue} and needs {need}, or --allow-foreign-feed to accept other prices"
            )
        return feed

    def _check_model_symbols(self, name: str, symbols: list[str], allowed: bool) -> None:
        """Refuse (or, allowed, warn loudly) when --model was trained on other symbols."""
        from models_ml.models import MLModel

        model = MLModel.objects.filter(name=name, active=True).first()
        trained = list(model.symbols or []) if model is not None else []
        foreign = [s for s in symbols if trained and s not in trained]
        if not foreign:
            return
        detail = f"{model} was trained on {', '.join(trained)}, not {', '.join(foreign)}"
        if not allowed:
            raise CommandError(f"{detail}: pass --allow-other-symbol to trade its calls anyway")
        self.stderr.write(f"WARNING: {detail}; its predictions there are untested.")

    def _stop_rules(self, options) -> list:
        from risk.engine.enforcer import stop_rules

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
            raise CommandError(
                f"account {account.name!r} is live: refusing to write simulated fills into it; "
                "use --live to trade it, or a paper account"
            )
        return account

    async def _run(
        self,
        config: RuntimeConfig,
        feed,
        serve: str | None,
        live,
        lock: OwnerLock,
        worker: TaskWorker | None = None,
    ):
        from channels.layers import get_channel_layer

        from trading.persistence import account_fence
        from trading.runtime import TradingRuntime

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runtime = TradingRuntime(config, feed, channel_layer=get_channel_layer(), live=live)
        server = _embedded_server(serve) if serve else None
        restore_collector = quiet_collector()
        server_task = asyncio.create_task(server.serve()) if server else None
        guard = asyncio.create_task(_guard_lock(lock, stop, account_fence(config.account)))
        if server:
            self.stdout.write(f"serving http://{serve}/ (dashboard), /admin/, /api/docs/")
        watcher = asyncio.create_task(worker.run(stop)) if worker is not None else None
        if worker is not None:
            self.stdout.write("task worker: django-q2 qcluster (runs --async jobs)")
        try:
            summary = await runtime.run(stop)
        finally:
            restore_collector()
            guard.cancel()
            if watcher is not None:
                await worker.stop()
                await asyncio.gather(watcher, return_exceptions=True)
            if live is not None:
                await live.close()
            if server is not None:
                server.should_exit = True
                await asyncio.gather(server_task, return_exceptions=True)
        if guard.done() and not guard.cancelled() and guard.result():
            raise CommandError(
                f"lost the lock of account {config.account!r} (taken by another process, or the "
                "database stayed unreachable); stopped so that no second engine trades it"
            )
        return summary


async def _guard_lock(
    lock: OwnerLock, stop: asyncio.Event, fence: AccountFence | None = None
) -> bool:
    """Keep the account lock; stop the engine and return True if another process takes it.

    A lock whose database connection was cut (a restart, a network blip) is taken again; only
    when another process holds it, or it cannot be taken back within ``LOCK_REGAIN_SECONDS``,
    does the engine stop, so that no two engines ever trade one account. While the lock is
    lost the fence is suspended (nothing written, so no order sent; the account reduces risk
    only), and a lock taken back counts only if nobody owned the account meanwhile (its epoch).
    A write that finds another owner's epoch stops the engine at once.
    """
    if fence is not None:
        loop = asyncio.get_running_loop()
        fence.on_lost = lambda: loop.call_soon_threadsafe(stop.set)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), LOCK_CHECK_SECONDS)
        if stop.is_set() or await asyncio.to_thread(lock.alive):
            continue
        if fence is not None:
            fence.suspended = True
        if not await _regain_lock(lock, stop, fence):
            stop.set()
            return True
    return fence is not None and fence.lost is not None


async def _regain_lock(
    lock: OwnerLock, stop: asyncio.Event, fence: AccountFence | None = None
) -> bool:
    """Take a lost lock back; return False if another process holds it or time runs out."""
    deadline = asyncio.get_running_loop().time() + LOCK_REGAIN_SECONDS
    while not stop.is_set():
        try:
            if await asyncio.to_thread(lock.acquire):
                if fence is not None and not await asyncio.to_thread(_confirm_fence, fence):
                    return False  # another engine owned the account meanwhile (logged)
                logger.warning(
                    "account lock %s taken back after its connection was lost", lock.name
                )
                return True
            logger.critical("account lock %s was taken by another process", lock.name)
            if fence is not None and fence.lost is None:
                # Final: that process owns the account now. The stopping engine then gives up
                # its unsaved state at once instead of retrying a suspended fence for 30 s.
                from trading.persistence import OwnershipLost

                fence.lost = OwnershipLost(
                    f"lost the lock of account {fence.account_name!r}: another process holds "
                    "it now; refusing every write so that no second engine trades it"
                )
            return False
        except Exception as exc:  # the database is still unreachable: keep trying a while
            if asyncio.get_running_loop().time() >= deadline:
                logger.critical("account lock %s could not be taken back: %s", lock.name, exc)
                return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return True


def fence_refused(account: Account, exc: Exception) -> str:
    """Say why the account's ownership could not be recorded (nothing was started)."""
    why = str(exc).strip() or type(exc).__name__
    message = (
        f"account {account.name!r}: could not record this engine as its owner in the database "
        f"({why}); nothing was started"
    )
    if "locked" in why:
        message += (
            ". Another process held the database's write lock past the busy timeout (SQLite "
            "lets one process write at a time: a backfill, an ingest, another engine's long "
            "write); try again when it has finished, or run on PostgreSQL (DATABASE_URL)"
        )
    return message


def _confirm_fence(fence: AccountFence) -> bool:
    """``fence.confirm()`` on a worker thread, closing the thread's connection after."""
    from django.db import connections

    try:
        return fence.confirm()
    finally:
        connections.close_all()


def _end_group(pgid: int) -> None:
    """SIGKILL process group ``pgid`` (the task worker's cluster: sentinel, workers, tasks)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


class TaskWorker:
    """A django-q2 ``qcluster`` child process beside the engine, restarted if it dies.

    ``--serve`` makes runtrader the one command of the embedded default, so the tasks that the
    CLI, the admin and the API queue (``--async`` backtests, sweeps, training) need a worker
    there too. It is a child process: a crash of a task never touches the engine's loop.
    """

    def __init__(self, restarts: int = WORKER_RESTARTS) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = restarts

    async def _spawn(self) -> asyncio.subprocess.Process:
        from monitoring.worker_metrics import child_env

        manage = Path(settings.BASE_DIR) / "manage.py"
        # Its tasks' series (jobs, alert deliveries, VaR) go to files that /metrics merges in;
        # emptied at the first start, kept across restarts.
        env = child_env(settings.DATA_DIR, wipe=self.proc is None)
        # The leader of its own process group, which ends it when runtrader dies, even by
        # SIGKILL (trading/worker_child.py), and which ``stop`` can kill whole.
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "trading.worker_child", str(os.getpid()), env=env,
            cwd=manage.parent, start_new_session=True,
        )  # fmt: skip

    async def run(self, stop: asyncio.Event) -> None:
        """Keep a worker running until ``stop``; a worker that exits is logged and restarted."""
        left = self.restarts
        while not stop.is_set():
            self.proc = await self._spawn()
            if stop.is_set():  # stopped while it was starting: ``stop()`` found nothing to end
                await self.stop()
                return
            code = await self.proc.wait()
            if stop.is_set():
                return
            _end_group(self.proc.pid)  # its sentinel and workers, left without their main
            if left <= 0:
                logger.critical("task worker exited (code %s) too often; not restarted", code)
                return
            left -= 1
            logger.error("task worker exited (code %s); restarting it", code)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WORKER_RESTART_DELAY)

    async def stop(self) -> None:
        """Stop the worker (SIGTERM lets it finish its tasks), killing it if it hangs."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        # SIGTERM to the main process alone: the whole group's would hang django-q2's stop
        # (see tests/qcluster_process.py).
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), WORKER_STOP_TIMEOUT)
        except TimeoutError:
            logger.error(
                "task worker did not stop in %ss; killing it, its workers and their tasks",
                WORKER_STOP_TIMEOUT,
            )
            _end_group(proc.pid)
            await proc.wait()


def quiet_collector() -> Callable[[], None]:
    """Keep the cyclic garbage collector's pauses short in a long-running engine.

    A collection stops the event loop the engine, the stream hub and the web server share. What
    is loaded by now (Django, the apps, the web app) lives as long as the process: frozen, a full
    collection no longer walks it. And the young generation holds ``GC_YOUNG_OBJECTS`` instead
    of 700: the engine allocates thousands of objects a second, most die before a collection
    sees them instead of being promoted and walked again by the older generations. A 150 s run
    at 50 symbols (``bench/soak_engine.py``, ``SOAK_GC_LOG``): collector time 20 s -> 2.5 s,
    full collections 20 -> 2, the longest pause 849 -> 226 ms.

    Return what puts the collector back as it was (a ``runtrader`` run inside a test process).
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_OBJECTS, *thresholds[1:])

    def restore() -> None:
        gc.set_threshold(*thresholds)
        gc.unfreeze()

    return restore


def _embedded_server(address: str):
    """Return a uvicorn server for the ASGI app (static files too) that leaves signals to us."""
    import uvicorn
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from monitoring.stream_socket import BoundedWebSocketProtocol
    from rrr_site.asgi import application

    host, port = parse_serve_address(address)

    class EmbeddedServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            yield

    config = uvicorn.Config(
        # No separate web server in front of the embedded one: it serves /static/ itself
        # (from the apps' static folders, as runserver does), so the admin has its CSS.
        ASGIStaticFilesHandler(application),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        # Sockets that hold little: a slow reader's backlog waits in its outbox, where order
        # notices go first and market data conflates (monitoring.stream_socket says why).
        ws=BoundedWebSocketProtocol,
        # Compressing every message for every client separately was a third of the stream's
        # send cost in the soak (zlib per message and connection, on the engine's loop).
        ws_per_message_deflate=False,
    )
    return EmbeddedServer(config)
