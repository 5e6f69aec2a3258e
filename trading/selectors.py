"""Reads for trading: account overviews, orders and positions."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from trading.adapters.base import live_trading_blockers
from trading.models import Account, Order, Position


def account_equity(*, account: Account, positions: list[Position]) -> Decimal:
    """Return cash plus the marked value of positions (average price when no mark exists)."""
    value = sum(
        (
            p.quantity * (p.mark_price if p.mark_price is not None else p.average_price)
            for p in positions
        ),
        Decimal(0),
    )
    return account.cash + value


def accounts_overview(*, user) -> list[dict]:
    """Return the accounts ``user`` may see with trading state, cash, equity, open positions."""
    overview = []
    accounts = (
        Account.objects.visible_to(user)
        .select_related("trading_state")
        .prefetch_related("positions__symbol")
    )
    for account in accounts:
        positions = [p for p in account.positions.all() if p.quantity != 0]
        state = getattr(account, "trading_state", None)
        overview.append(
            {
                "name": account.name,
                "mode": account.mode,
                "state": state.state if state else "active",
                "cash": account.cash,
                "equity": account_equity(account=account, positions=positions),
                "positions": [{"symbol": p.symbol.name, "quantity": p.quantity} for p in positions],
            }
        )
    return overview


def orders_recent(*, user, limit: int = 50) -> list[Order]:
    """Return the most recent orders of the accounts ``user`` may see."""
    orders = Order.objects.filter(account__in=Account.objects.visible_to(user))
    return list(orders.select_related("account", "symbol").order_by("-created_at")[:limit])


def live_trading_blockers_for(*, account: Account) -> list[str]:
    """Return why ``account`` may not trade live (empty when everything is in place)."""
    keys = {
        "binance": (settings.BINANCE_API_KEY, settings.BINANCE_API_SECRET),
        "coinbase": (settings.COINBASE_API_KEY, settings.COINBASE_API_SECRET),
        "kraken": (settings.KRAKEN_API_KEY, settings.KRAKEN_API_SECRET),
    }
    venue_keys = keys.get(account.venue, ("", ""))
    blockers = live_trading_blockers(
        settings.LIVE_TRADING, all(venue_keys), account.mode, venue=account.venue.upper()
    )
    if account.venue not in keys:
        blockers.append(f"account venue {account.venue!r} is not a live exchange")
    return blockers


def live_venue_for(*, account: Account):
    """Return the ccxt live venue configured for ``account`` (keys, sandbox, URL override)."""
    from trading.adapters.ccxt_live import CcxtLiveVenue

    venue = account.venue
    prefix = venue.upper()
    url = settings.EXCHANGE_API_URLS.get(venue, "")
    return CcxtLiveVenue(
        venue,
        api_key=getattr(settings, f"{prefix}_API_KEY"),
        secret=getattr(settings, f"{prefix}_API_SECRET"),
        sandbox=settings.EXCHANGE_SANDBOX,
        api_urls={"public": url, "private": url} if url else None,
    )
