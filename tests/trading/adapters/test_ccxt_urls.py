"""A REST URL override moves every API section of a live venue: no request leaves its host."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

from tests.fakes.exchange_binance import API_KEY, API_SECRET, FakeBinanceExchange, binance_market
from tests.trading.adapters.conftest import within
from trading.adapters.ccxt_live import CcxtLiveVenue


def all_urls(value: Any) -> Iterator[str]:
    """Yield every string inside ccxt's ``urls['api']`` (nested dicts and lists)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from all_urls(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from all_urls(item)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize(
    ("exchange_id", "override"),
    [
        ("binance", "https://testnet.binance.vision/api/v3"),
        ("binance", "http://127.0.0.1:9/prefix/api/v3"),
        ("coinbase", "https://api-sandbox.coinbase.com"),
        ("kraken", "http://127.0.0.1:9"),
    ],
)
async def test_every_api_url_follows_the_override(exchange_id: str, override: str) -> None:
    venue = CcxtLiveVenue(
        exchange_id,
        api_key="k",
        secret="c2VjcmV0",  # base64: Kraken decodes its secret
        api_urls={"public": override, "private": override},
    )
    try:
        host = urlsplit(override)
        urls = list(all_urls(venue.exchange.urls["api"]))
        assert len(urls) >= 3 if exchange_id != "coinbase" else urls
        for url in urls:
            assert urlsplit(url).netloc == host.netloc, url
            assert url.startswith(f"{host.scheme}://{host.netloc}"), url
        if exchange_id == "binance":
            api = venue.exchange.urls["api"]
            prefix = override.removesuffix("/api/v3")
            assert api["sapi"] == f"{prefix}/sapi/v1"
            assert api["fapiPrivate"].startswith(f"{prefix}/fapi/")
    finally:
        await venue.close()


@pytest.fixture
async def exchange() -> Any:
    """The fake Binance exchange, answering any sapi/fapi/dapi call with an empty JSON list."""
    server = FakeBinanceExchange()

    async def anything(request: web.Request) -> web.Response:
        return web.json_response([])

    for prefix in ("sapi", "fapi", "dapi"):
        server.app.router.add_route("*", f"/{prefix}/{{tail:.*}}", anything)
    await within(server.start())
    yield server
    await within(server.stop())


async def test_signed_sapi_and_fapi_calls_reach_the_configured_host(exchange) -> None:
    venue = CcxtLiveVenue(
        "binance",
        api_key=API_KEY,
        secret=API_SECRET,
        api_urls=exchange.ccxt_urls(),
        markets=[binance_market()],
        timeout_ms=2_000,
        config={"enableRateLimit": False, "timeout_on_exit": 0},
    )
    try:
        # Without the fix these go to api.binance.com / fapi.binance.com: no answer offline.
        await within(venue.exchange.sapi_get_capital_config_getall())
        await within(venue.exchange.fapiprivatev2_get_balance())
        await within(venue.balance())  # and the private spot API, as before
    finally:
        await within(venue.close())
    paths = {urlsplit(path_qs).path: path_qs for _method, path_qs, _ in exchange.requests}
    assert {"/sapi/v1/capital/config/getall", "/fapi/v2/balance", "/api/v3/account"} <= set(paths)
    for path_qs in paths.values():
        query = parse_qs(urlsplit(path_qs).query)
        assert "signature" in query and "timestamp" in query, path_qs
