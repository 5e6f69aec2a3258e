"""WebSocket connections whose socket holds little: a slow reader's backlog stays in its outbox.

A connection's ``Outbox`` (``monitoring.engine.stream``) puts order notices before market data and
replaces waiting market data with newer; it can do neither for what it has already handed to the
socket. By default that is a lot: the transport buffers 64 KiB before it pushes back, and Linux
autotunes a loopback socket's send buffer up to ``tcp_wmem``'s maximum (4 MiB here), so a client
reading slower than the market moves had seconds of stale market data queued ahead of its next
order notice. ``BoundedWebSocketProtocol`` (the embedded server's, ``runtrader --serve``) caps
both, so the sender task waits early and the backlog waits in the outbox, where it conflates.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

logger = logging.getLogger(__name__)

# Bytes. The kernel doubles SO_SNDBUF for its bookkeeping: ~64 KiB in flight, ample for a
# dashboard's stream (a window a round trip: 64 KiB per 100 ms is 640 KiB/s over a WAN).
SEND_BUFFER = 32 * 1024
WRITE_HIGH = 16 * 1024  # the transport's own buffer before the sender waits


def bound_socket_buffers(transport: asyncio.BaseTransport) -> None:
    """Cap what ``transport`` and its socket hold of a connection's outgoing data."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except OSError as exc:  # not a TCP socket (a test's pipe): the outbox still conflates
            logger.debug("could not cap a WebSocket's send buffer: %s", exc)
    if isinstance(transport, asyncio.WriteTransport):
        transport.set_write_buffer_limits(high=WRITE_HIGH)


class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol with the socket's buffers capped (``bound_socket_buffers``)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        """Take the connection and cap its buffers before anything is written."""
        bound_socket_buffers(transport)
        super().connection_made(transport)
