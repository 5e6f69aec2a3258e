"""WebSocket consumer for live groups: ``market.<symbol>``, ``orders``, ``portfolio``, ``risk``.

This is the older route, ``/ws/<group>/``: one group per socket, no snapshot, no sequence
numbers. New clients use ``/ws/v1/stream`` (``monitoring.stream``, docs/websocket.md); both get
the messages published through ``monitoring.realtime.publish``. Here ``orders`` carries the
``fills`` channel's messages too, as it did before fills had their own channel, and a market
group carries only bars and predictions, as it always did (trades, quotes and books are new).

Every handshake is accepted and then, when refused, closed with a code the client can act on (a
handshake refused before ``accept`` reaches browsers and native clients as a bare HTTP 403):

* 4401 unauthenticated: no credentials, a bad token, or a session cookie from a foreign Origin
  (the close reason says which);
* 4403 forbidden: the user may not watch that account (or, for ``system``, is not staff);
* 4404 not found: unknown group, malformed or unknown symbol, unknown route.

Account groups carry ``data["account"]``; a user receives only the messages of the accounts
granted to them (``Account.members``); staff and superusers receive all. ``?account=<name>``
narrows a connection to one account. Grants are re-read every ``GRANTS_TTL`` seconds, so a
revoked grant stops the stream without a reconnect.
"""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from rrr_site.ws_auth import REFUSED_ORIGIN

MARKET_GROUP = re.compile(r"market\.([A-Z0-9]{1,16}-[A-Z0-9]{1,16})")
ACCOUNT_GROUPS = frozenset({"orders", "portfolio", "risk"})
STAFF_GROUPS = frozenset({"system"})
UNAUTHENTICATED = 4401
FORBIDDEN = 4403
NOT_FOUND = 4404
UNKNOWN_GROUP = NOT_FOUND  # the name earlier code and tests used
LEGACY_MARKET_KINDS = frozenset({"bar", "prediction"})


class Refused(Exception):
    """A handshake refused with a WebSocket close code and a short reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@database_sync_to_async
def _symbol_exists(name: str) -> bool:
    from marketdata.models import Symbol

    return Symbol.objects.filter(name=name).exists()


@database_sync_to_async
def _visible_accounts(user) -> frozenset[str] | None:
    """Return the names of the accounts ``user`` may watch; None means every account."""
    from trading.models import Account

    try:
        user.refresh_from_db(fields=["is_active", "is_staff", "is_superuser"])
    except user.DoesNotExist:  # deleted while connected: no account any more
        return frozenset()
    if user.is_active and (user.is_staff or user.is_superuser):
        return None
    return frozenset(Account.objects.visible_to(user).values_list("name", flat=True))


class LiveGroupConsumer(AsyncJsonWebsocketConsumer):
    """Authenticate, authorise, join one group, forward the messages the user may see as JSON."""

    GRANTS_TTL = 30.0  # seconds between re-reads of the user's account grants

    group: str = ""
    account: str | None = None  # the one account asked for with ?account=
    accounts: frozenset[str] | None = None  # the accounts this user may watch; None = all
    grants_read_at: float = 0.0

    async def connect(self) -> None:
        """Join the group and accept, or accept and close with the code that says why not."""
        try:
            await self._authorise()
        except Refused as refused:
            await self.accept()
            await self.close(code=refused.code, reason=refused.reason)
            return
        # Joined before accepting: once the client sees the handshake, no message is missed.
        for group in self._layer_groups():
            await self.channel_layer.group_add(group, self.channel_name)
        self.rejoiner = asyncio.create_task(self._rejoin())
        await self.accept()

    async def _rejoin(self) -> None:
        """Refresh the memberships before the layer's ``group_expiry`` silently ends them."""
        from monitoring.stream_hub import REJOIN_EVERY

        while True:
            await asyncio.sleep(REJOIN_EVERY)
            for group in self._layer_groups():
                await self.channel_layer.group_add(group, self.channel_name)

    def _groups(self) -> list[str]:
        """Return the layer groups this connection listens to (``orders`` includes fills)."""
        return [self.group, "fills"] if self.group == "orders" else [self.group]

    def _layer_groups(self) -> list[str]:
        """Return the layer groups joined: this route's, and the engine's bundles of every one."""
        from monitoring.stream_hub import BUNDLES

        return [*self._groups(), BUNDLES]

    async def _authorise(self) -> None:
        """Set the group and account scope of this connection, or raise ``Refused``."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            if self.scope.get("auth_refused") == REFUSED_ORIGIN:
                raise Refused(UNAUTHENTICATED, "session cookie from a foreign or missing Origin")
            raise Refused(UNAUTHENTICATED, "authentication required")
        group = self.scope["url_route"]["kwargs"].get("group", "")
        market = MARKET_GROUP.fullmatch(group)
        if market is not None:
            if not await _symbol_exists(market.group(1)):
                raise Refused(NOT_FOUND, "unknown symbol")
        elif group in STAFF_GROUPS:
            if not (user.is_staff or user.is_superuser):
                raise Refused(FORBIDDEN, "staff only")
        elif group in ACCOUNT_GROUPS:
            await self._authorise_accounts(user)
        else:
            raise Refused(NOT_FOUND, "unknown group")
        self.group = group

    async def _authorise_accounts(self, user) -> None:
        """Read the user's grants; refuse an account (or an empty grant) they may not watch."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        self.account = query["account"][0] if query.get("account") else None
        await self._read_grants(user)
        if self.accounts is None:
            return
        if self.account is not None and self.account not in self.accounts:
            raise Refused(FORBIDDEN, "account not granted")
        if not self.accounts:
            raise Refused(FORBIDDEN, "no account granted")

    async def _read_grants(self, user) -> None:
        self.accounts = await _visible_accounts(user)
        self.grants_read_at = time.monotonic()

    async def disconnect(self, code: int) -> None:
        """Leave the group."""
        rejoiner = getattr(self, "rejoiner", None)
        if rejoiner is not None:
            rejoiner.cancel()
        if self.group:
            for group in self._layer_groups():
                await self.channel_layer.group_discard(group, self.channel_name)

    async def group_message(self, event: dict) -> None:
        """Forward a broadcast to the client if the user may see its account."""
        if self.group in ACCOUNT_GROUPS and not await self._may_see(event.get("data")):
            return
        await self.send_json({"group": self.group, "kind": event["kind"], "data": event["data"]})

    async def stream_message(self, event: dict) -> None:
        """Forward a message published for the stream protocol, in this route's format."""
        if self.group.startswith("market.") and event["kind"] not in LEGACY_MARKET_KINDS:
            return
        await self.group_message(event)

    async def stream_bundle(self, event: dict) -> None:
        """Forward the messages of this connection's groups in a bundle (``runtrader``'s)."""
        from monitoring.stream_hub import bundle_parts

        groups = self._groups()
        for channel, _, messages in bundle_parts(event):
            if channel in groups:
                for message in messages:
                    await self.stream_message(message)

    async def _may_see(self, data: object) -> bool:
        """Say whether an account-group message belongs to an account this connection watches."""
        # A message that names no account is shown only to users who see every account.
        account = data.get("account") if isinstance(data, dict) else None
        if self.account is not None and account != self.account:
            return False
        if time.monotonic() - self.grants_read_at >= self.GRANTS_TTL:
            await self._read_grants(self.scope["user"])
            if self._grant_lost():
                await self.close(code=FORBIDDEN, reason="grant revoked")
                return False
        return self.accounts is None or account in self.accounts

    def _grant_lost(self) -> bool:
        """Say whether the latest grants no longer cover what this connection watches."""
        if self.accounts is None:
            return False
        return not self.accounts or (self.account is not None and self.account not in self.accounts)
