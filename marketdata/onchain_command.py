"""``backfill --source onchain:eth|onchain:btc``: the command side of the on-chain backfill."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from marketdata.adapters.base import FeedError
from marketdata.engine.onchain import OnchainError


def exchange_addresses(raw: str) -> list[str]:
    """Parse ``a,b,c`` or ``@FILE`` (one address a line, ``#`` comments)."""
    if raw.startswith("@"):
        path = Path(raw[1:])
        if not path.is_file():
            raise CommandError(f"--exchange-addresses {raw}: no such file")
        lines = path.read_text().splitlines()
    else:
        lines = raw.split(",")
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def onchain_backfill_command(
    cmd: BaseCommand, options: dict, start: datetime, end: datetime
) -> None:
    """Check the flags, run the backfill with a progress bar on a terminal, print the outcome."""
    from marketdata.onchain import onchain_backfill_run

    source = options["source"]
    for flag in ("symbols", "file", "api_key"):
        if options.get(flag):
            raise CommandError(f"--{flag.replace('_', '-')} does not apply to --source {source}")
    if options.get("enqueue"):
        raise CommandError(f"--async is not available for --source {source}; run it here")
    chain = source.split(":")[1]
    url = options["url"] or (settings.ETH_RPC_URL if chain == "eth" else settings.BTC_ESPLORA_URL)
    if not url:
        raise CommandError("--source onchain:eth needs --url or ETH_RPC_URL (a node's JSON-RPC)")
    threshold = options.get("large_threshold")
    if threshold is not None and not threshold > 0:
        raise CommandError("--large-threshold must be > 0")
    tokens = [t.strip() for t in options.get("tokens", "").split(",") if t.strip()]
    if tokens and chain != "eth":
        raise CommandError("--tokens only applies to --source onchain:eth")
    bar = _progress(not options["no_progress"] and sys.stderr.isatty())
    try:
        result = onchain_backfill_run(
            source,
            url,
            timeframe=options["timeframe"],
            start=start,
            end=end,
            exchanges=exchange_addresses(options.get("exchange_addresses", "")),
            large_threshold=threshold,
            tokens=tokens,
            progress=bar,
        )
    except (FeedError, OnchainError, OSError) as exc:
        raise CommandError(
            f"{source}: {exc}; intervals stored so far are kept, rerun to resume"
        ) from exc
    cmd.stdout.write(
        cmd.style.SUCCESS(
            f"{source} {options['timeframe']}: {result.stored} intervals stored from "
            f"{result.blocks} blocks, {result.skipped} already stored, {result.pending} not "
            "finished on the chain yet"
        )
    )


def _progress(enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    bar = tqdm(unit="interval", file=sys.stderr)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update
