"""The ``--metrics-port`` server of ``runtrader`` and ``ingest``, behind ``/metrics``'s gate.

prometheus-client's own server answers anyone who reaches the port; with ``--metrics-host
0.0.0.0`` that put an account's equity, cash and P&L in front of every host on the network.
This one asks ``monitoring.metrics_access.metrics_refusal`` first, as the web's ``/metrics``
does: a ``METRICS_TOKEN`` bearer, or an address in ``METRICS_ALLOWED_NETWORKS`` with no
forwarding header.
"""

from __future__ import annotations

import socket
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        """Scrapes are not logged (one line every few seconds)."""


def gated_wsgi_app(registry):
    """Return a WSGI app serving ``registry`` to the requests ``/metrics`` would admit."""
    from django.core.handlers.wsgi import WSGIRequest

    from monitoring.metrics_access import metrics_refusal

    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):
        refusal = metrics_refusal(WSGIRequest(environ))
        if refusal is None:
            return metrics_app(environ, start_response)
        status = f"{refusal.status_code} {refusal.reason_phrase}"
        start_response(status, list(refusal.items()))
        return [refusal.content]

    return app


def gated_metrics_server(host: str, port: int, registry) -> ThreadingWSGIServer:
    """Serve ``registry`` on ``host:port`` from a daemon thread; stop with ``shutdown()``."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(ThreadingWSGIServer):
        address_family = family

    server = make_server(host, port, gated_wsgi_app(registry), Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics-http").start()
    return server
