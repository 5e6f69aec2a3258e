"""Headlines from RSS 2.0 and Atom news feeds, matched to symbols by ticker and asset name."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from marketdata.adapters.base import FeedProtocolError
from marketdata.engine.sentiment import Headline

ATOM = "{http://www.w3.org/2005/Atom}"
MAX_FEED_BYTES = 2_000_000
# Names a headline uses for an asset besides its ticker.
ASSET_NAMES: Mapping[str, tuple[str, ...]] = {
    "BTC": ("bitcoin",),
    "ETH": ("ethereum", "ether"),
    "SOL": ("solana",),
    "XRP": ("ripple",),
    "ADA": ("cardano",),
    "DOGE": ("dogecoin",),
}


def parse_feed(text: str, source: str) -> list[tuple[datetime, str]]:
    """Return (published, title) of every item of an RSS or Atom document; skip undated ones."""
    if "<!DOCTYPE" in text[:2000] or "<!ENTITY" in text:
        raise FeedProtocolError(f"news feed {source}: DTDs and entities are refused")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise FeedProtocolError(f"news feed {source}: not XML ({exc})") from None
    items = []
    for item in root.iter("item"):
        items.append((_rss_date(item.findtext("pubDate")), item.findtext("title")))
    for entry in root.iter(f"{ATOM}entry"):
        stamp = entry.findtext(f"{ATOM}published") or entry.findtext(f"{ATOM}updated")
        items.append((_iso_date(stamp), entry.findtext(f"{ATOM}title")))
    return [(ts, " ".join(title.split())) for ts, title in items if ts and title]


def headlines_for(
    items: Iterable[tuple[datetime, str]], symbols: Iterable[str], source: str
) -> list[Headline]:
    """Match titles to symbols by whole-word ticker (``BTC``) or asset name (``Bitcoin``)."""
    out = []
    patterns = {s: _pattern(s) for s in symbols}
    for ts, title in items:
        for symbol, pattern in patterns.items():
            if pattern.search(title):
                out.append(Headline(symbol=symbol, ts=ts, title=title, source=source))
    return out


async def fetch_headlines(
    session: aiohttp.ClientSession, urls: Iterable[str], symbols: list[str]
) -> list[Headline]:
    """Fetch every feed and return its headlines about ``symbols``."""
    found: list[Headline] = []
    for url in urls:
        async with session.get(url) as response:
            body = await response.content.read(MAX_FEED_BYTES + 1)
            if response.status != 200:
                raise FeedProtocolError(f"news feed {url}", status=response.status)
            if len(body) > MAX_FEED_BYTES:
                raise FeedProtocolError(f"news feed {url}: larger than {MAX_FEED_BYTES} bytes")
        found += headlines_for(parse_feed(body.decode("utf-8", "replace"), url), symbols, url)
    return found


def _pattern(symbol: str) -> re.Pattern:
    base = symbol.split("-")[0].upper()
    words = [re.escape(base), *(re.escape(n) for n in ASSET_NAMES.get(base, ()))]
    return re.compile(rf"\b({'|'.join(words)})\b", re.IGNORECASE)


def _rss_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError):
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def _iso_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None
