"""``manage.py ingest``: stream a feed into the database (validated, aggregated) without trading."""

from __future__ import annotations

import asyncio
import math
import re
import signal
import time
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

from marketdata.adapters.base import FeedAuthError, FeedError, FeedUnavailable
from marketdata.constants import ALT_INGEST_SOURCES, DEFAULT_FUTURE_HORIZON, LIVE_SOURCES
from marketdata.engine.constants import DEFAULT_SYMBOLS_BY_NAME
from marketdata.engine.errors import SimulationConfigError
from marketdata.models import Symbol
from marketdata.services import quality_event_record_rejected, symbols_ensure

if TYPE_CHECKING:
    from marketdata.pipeline import EventHorizon, MarketDataPipeline

# The feed, pipeline and storage modules (numpy, psycopg underneath) load only when a feed
# runs: ``--help`` and the commands importing parse_symbols start light.

# BASE-QUOTE, each part as long as Symbol.base / Symbol.quote allow.
SYMBOL_PATTERN = re.compile(r"[A-Z0-9]{1,16}-[A-Z0-9]{1,16}")
SYMBOL_MAX_LENGTH = Symbol._meta.get_field("name").max_length
URL_SCHEMES = ("ws", "wss", "http", "https")


def parse_symbols(raw: str) -> list[str]:
    """Split ``BTC-USD,ETH-USD`` into unique names; refuse names no Symbol row could hold."""
    names = list(dict.fromkeys(s.strip().upper() for s in raw.split(",") if s.strip()))
    if not names:
        raise CommandError("--symbols needs at least one symbol, e.g. BTC-USD,ETH-USD")
    for name in names:
        if len(name) > SYMBOL_MAX_LENGTH:
            raise CommandError(
                f"--symbols: {name[:64]!r} is longer than {SYMBOL_MAX_LENGTH} characters"
            )
        if not SYMBOL_PATTERN.fullmatch(name):
            raise CommandError(f"--symbols: {name!r} is not BASE-QUOTE (e.g. BTC-USD)")
    return names


def check_url(url: str | None) -> None:
    """Refuse a feed URL that is not ws://, wss://, http:// or https:// with a host."""
    if url is None:
        return
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        raise CommandError(f"--url {url!r} has an invalid port") from None
    if parts.scheme not in URL_SCHEMES or not parts.hostname:
        raise CommandError(
            f"--url {url!r} is not a feed URL; expected ws://HOST[:PORT]/PATH (or wss, http, https)"
        )


def check_speed(speed: float) -> None:
    """Refuse a negative or non-finite simulation speed (0 means as fast as possible)."""
    if not math.isfinite(speed) or speed < 0:
        raise CommandError(
            f"--speed must be a finite number >= 0 (0 = as fast as possible), got {speed}"
        )


def check_sim_symbols(source: str, symbols: list[str]) -> None:
    """Refuse symbols the simulated market does not model."""
    unknown = [name for name in symbols if name not in DEFAULT_SYMBOLS_BY_NAME]
    if source == "sim" and unknown:
        raise CommandError(
            f"the simulated market has no {', '.join(unknown)}; "
            f"it simulates {', '.join(DEFAULT_SYMBOLS_BY_NAME)}"
        )


def feed_for_command(source: str, symbols: list[str], options: dict):
    """Validate the feed options, build the feed, then create missing symbols.

    Everything is checked before the first row is written: bad input is one CommandError.
    """
    from marketdata.engine.planting import parse_plants
    from marketdata.feeds import build_feed
    from marketdata.selectors import feed_config

    check_url(options["url"])
    check_speed(options["speed"])
    check_sim_symbols(source, symbols)
    try:
        pairs, impacts = parse_plants(
            options.get("plant_pair", ()), options.get("plant_impact", ())
        )
    except SimulationConfigError as exc:
        raise CommandError(str(exc)) from None
    try:
        feed = build_feed(
            source,
            symbols,
            feed_config(),
            url=options["url"],
            api_key=options["api_key"],
            speed=options["speed"],
            seed=options["seed"],
            cointegrated=pairs,
            impacts=impacts,
            duration=options.get("duration"),
        )
        symbols_ensure(symbols)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    return feed


def check_seconds(value: float | None, flag: str) -> None:
    """Refuse a duration that is not a finite number of seconds above 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise CommandError(f"{flag} must be a finite number of seconds above 0, got {value}")


def horizon_for(source: str, options: dict) -> EventHorizon | None:
    """Return the clock horizon of a live source (None for the simulator, which runs ahead)."""
    from marketdata.pipeline import EventHorizon

    if source == "sim":
        return None
    past = options["past_horizon"]
    return EventHorizon(
        future=timedelta(seconds=options["future_horizon"]),
        past=None if past is None else timedelta(seconds=past),
    )


class Command(BaseCommand):
    help = "Stream market data into the database; prints counts when stopped or after --duration."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--source",
            choices=[*LIVE_SOURCES, *ALT_INGEST_SOURCES],
            default="sim",
            help="Live feed (or alternative data) to ingest",
        )
        parser.add_argument(
            "--symbols", default="BTC-USD,ETH-USD", help="Comma-separated symbols to subscribe"
        )
        parser.add_argument("--url", help="Override the source's WebSocket URL")
        parser.add_argument("--api-key", help="Override the source's API key (Polygon)")
        parser.add_argument("--duration", type=float, help="Stop after this many seconds")
        parser.add_argument(
            "--speed",
            type=float,
            default=1.0,
            help="Simulated market speed multiplier (0 = as fast as possible)",
        )
        parser.add_argument("--seed", type=int, default=42, help="Seed of --source sim")
        parser.add_argument(
            "--plant-pair",
            action="append",
            default=[],
            metavar="FOLLOWER:LEADER[:BETA[:HALF_LIFE_H[:SIGMA]]]",
            help="--source sim: plant a cointegrated pair in the stream (repeatable)",
        )
        parser.add_argument(
            "--plant-impact",
            action="append",
            default=[],
            metavar="SYMBOL:COEFFICIENT",
            help="--source sim: plant a flow impact (mid moves COEFFICIENT quote units per "
            "base unit of net aggressor flow; repeatable)",
        )
        parser.add_argument(
            "--future-horizon",
            type=float,
            default=DEFAULT_FUTURE_HORIZON.total_seconds(),
            metavar="SECONDS",
            help="Quarantine live events stamped further ahead of this host's clock (default 300)",
        )
        parser.add_argument(
            "--past-horizon",
            type=float,
            metavar="SECONDS",
            help="Quarantine live events older than this (default: accept any age)",
        )
        alt = parser.add_argument_group("sentiment and on-chain sources")
        alt.add_argument("--interval", type=float, default=300.0, help="Seconds between rounds")
        alt.add_argument(
            "--provider",
            choices=["lexicon", "llm"],
            default="lexicon",
            help="sentiment: how headlines are scored",
        )
        alt.add_argument("--news-url", action="append", default=[], help="RSS/Atom feed (repeat)")
        alt.add_argument(
            "--timeframe",
            default="1h",
            choices=["5m", "15m", "1h", "4h", "1d"],
            help="on-chain: interval the metrics are stored per",
        )
        alt.add_argument("--lookback", type=float, default=86_400.0, help="On-chain seconds back")
        alt.add_argument("--exchange-addresses", default="", help="a,b,c or @FILE")
        alt.add_argument("--large-threshold", type=float, help="Native amount of a large transfer")
        parser.add_argument(
            "--metrics-port",
            type=int,
            metavar="PORT",
            help="Serve this feed's Prometheus series on http://HOST:PORT/metrics",
        )
        parser.add_argument(
            "--metrics-host", default="127.0.0.1", help="Address for --metrics-port (loopback)"
        )

    def handle(self, *args, **options) -> None:
        check_seconds(options["duration"], "--duration")
        check_seconds(options["future_horizon"], "--future-horizon")
        check_seconds(options["past_horizon"], "--past-horizon")
        source = options["source"]
        symbols = parse_symbols(options["symbols"])
        if source in ALT_INGEST_SOURCES:
            from marketdata.alt_ingest_command import alt_ingest_command

            alt_ingest_command(self, options, symbols)
            return
        from marketdata.pipeline import MarketDataPipeline
        from marketdata.storage import WriterFailed

        feed = feed_for_command(source, symbols, options)
        pipeline = MarketDataPipeline(
            source=source, symbols=symbols, horizon=horizon_for(source, options)
        )
        metrics, server = self._metrics(source, options, symbols)
        try:
            counts = asyncio.run(self._run(feed, pipeline, options["duration"], metrics))
        except FeedAuthError as exc:
            raise CommandError(f"authentication failed: {exc}") from exc
        except FeedUnavailable as exc:
            raise CommandError(f"feed unavailable: {exc}") from exc
        except FeedError as exc:
            raise CommandError(f"feed failed: {exc}") from exc
        except WriterFailed as exc:
            raise CommandError(f"storage failed: {exc}") from exc
        finally:
            if server is not None:
                server.shutdown()
        self.stdout.write(" ".join(f"{k}={v}" for k, v in counts.items()))

    def _metrics(self, source: str, options, symbols):
        """Return (FeedMetrics, exporter) for ``--metrics-port``, or (None, None)."""
        port = options["metrics_port"]
        if port is None:
            return None, None
        if not 0 < port < 65536:
            raise CommandError(f"--metrics-port must be 1-65535, got {port}")
        from monitoring.metrics import FeedMetrics, metrics_http_server

        try:
            server = metrics_http_server(options["metrics_host"], port)
        except OSError as exc:
            raise CommandError(f"--metrics-port: cannot listen on port {port} ({exc})") from exc
        self.stdout.write(f"metrics on http://{options['metrics_host']}:{port}/metrics")
        return FeedMetrics(source, symbols=symbols), server  # others count under '_other'

    async def _run(
        self, feed, pipeline: MarketDataPipeline, duration: float | None, metrics=None
    ) -> dict:
        from marketdata.ingestion import ingest_feed
        from marketdata.storage import AsyncBatchWriter

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        source = pipeline.source
        writer = AsyncBatchWriter(
            clock=time.monotonic,
            on_reject=lambda event, why: quality_event_record_rejected(
                event=event, reason=why, source=source
            ),
        ).start()
        consumer = asyncio.create_task(ingest_feed(feed, pipeline, writer, stop, metrics=metrics))
        # The writer's task ends early only when it fails: stop at once, never at shutdown.
        waiters = [consumer, asyncio.create_task(stop.wait()), writer.task]
        try:
            await asyncio.wait(waiters, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.set()
            await feed.close()
            await asyncio.wait(waiters[:2], timeout=10)
            if not writer.task.done():
                # Bars of windows not yet ended are dropped, not stored as if complete; their
                # trades are stored, so a backfill or a rerun over them can rebuild them.
                await writer.put_many(pipeline.flush(partial=False))
            stats = await writer.close()
        if consumer.done() and consumer.exception() is not None:
            raise consumer.exception()
        counts = pipeline.counts.as_dict()
        return {
            **counts,
            "stored": stats.written,
            "rejected_by_storage": stats.rejected,
            "reconnects": getattr(feed.stats, "reconnects", 0),
        }
