"""The command side of ``ingest --source sentiment|onchain:eth|onchain:btc``."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

import aiohttp
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from marketdata.adapters.base import FeedAuthError
from marketdata.alt_ingest import SourceFailing, onchain_round_fn, run_rounds, sentiment_round_fn


def alt_ingest_command(cmd: BaseCommand, options: dict, symbols: list[str]) -> None:
    """Check the flags, run rounds until stopped or ``--duration``, print the counts."""
    source = options["source"]
    interval = options["interval"]
    if not interval > 0:
        raise CommandError("--interval must be a number of seconds above 0")
    try:
        counts = asyncio.run(_run(source, options, symbols, interval))
    except FeedAuthError as exc:
        raise CommandError(f"authentication failed: {exc}") from exc
    except SourceFailing as exc:
        raise CommandError(f"{source}: {exc}") from exc
    cmd.stdout.write(" ".join(f"{k}={v}" for k, v in sorted(counts.items())))


async def _run(source: str, options: dict, symbols: list[str], interval: float):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if options["duration"]:
        loop.call_later(options["duration"], stop.set)
    try:
        if source == "sentiment":
            return await _sentiment(options, symbols, interval, stop)
        return await _onchain(source, options, interval, stop)
    finally:  # the database connection of sync_to_async's thread, which ends with this loop
        await sync_to_async(connections.close_all)()


def _provider(name: str):
    if name == "lexicon":
        from marketdata.engine.sentiment import LexiconSentimentProvider

        return LexiconSentimentProvider()
    from marketdata.adapters.sentiment_llm import LLMSentimentProvider

    if not settings.SENTIMENT_LLM_API_KEY:
        raise CommandError("--provider llm needs SENTIMENT_LLM_API_KEY or PERPLEXITY_API_KEY")
    return LLMSentimentProvider(
        url=settings.SENTIMENT_LLM_URL,
        api_key=settings.SENTIMENT_LLM_API_KEY,
        model=settings.SENTIMENT_LLM_MODEL,
    )


async def _sentiment(options: dict, symbols: list[str], interval: float, stop):
    from marketdata.services import symbols_ensure

    urls = options["news_url"] or settings.SENTIMENT_NEWS_URLS
    if not urls:
        raise CommandError("--source sentiment needs --news-url URL (or SENTIMENT_NEWS_URLS)")
    provider = _provider(options["provider"])
    await sync_to_async(symbols_ensure)(symbols)
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            fn = sentiment_round_fn(provider, urls=urls, symbols=symbols, session=session)
            return await run_rounds(fn, interval=interval, stop=stop)
    finally:
        close = getattr(provider, "close", None)
        if close is not None:
            await close()


async def _onchain(source: str, options: dict, interval: float, stop):
    from marketdata.onchain import onchain_source_open
    from marketdata.onchain_command import exchange_addresses

    chain = source.split(":")[1]
    url = options["url"] or (settings.ETH_RPC_URL if chain == "eth" else settings.BTC_ESPLORA_URL)
    if not url:
        raise CommandError(f"--source {source} needs --url (a node's JSON-RPC URL or ETH_RPC_URL)")
    client = onchain_source_open(source, url)
    lookback = timedelta(seconds=options["lookback"])
    fn = onchain_round_fn(
        client,
        timeframe=options["timeframe"],
        lookback=lookback,
        exchanges=exchange_addresses(options["exchange_addresses"]),
        threshold=options["large_threshold"],
    )
    try:
        return await run_rounds(fn, interval=interval, stop=stop)
    finally:
        await client.close()
