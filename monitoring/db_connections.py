"""Database connections of web requests served over ASGI end with the request.

Django's ``ASGIHandler`` runs each request's synchronous code (views, middleware, the
``request_finished`` receivers) on a thread of its own that ends with the request. A connection
that ``CONN_MAX_AGE`` keeps open is therefore never reused: it stays open, one PostgreSQL backend
per recent request, until the garbage collector happens to free its thread's objects (and a
server-side disconnect is never noticed by anyone). ``runtrader --serve`` runs the web app in the
engine's process, whose long-lived threads (the engine's database thread, the market-data writer)
do reuse their connections for ``DB_CONN_MAX_AGE`` with ``CONN_HEALTH_CHECKS`` replacing a dead
one; so rather than setting the age to 0 for the whole process, a request served over ASGI
closes its own thread's connections when it finishes. WSGI requests keep Django's behaviour.
"""

from __future__ import annotations

from django.core.handlers.asgi import ASGIHandler
from django.db import connections


def close_request_connections(sender, **kwargs) -> None:
    """Close this thread's database connections at the end of an ASGI request."""
    if isinstance(sender, type) and issubclass(sender, ASGIHandler):
        connections.close_all()
