"""Run an async fake server from synchronous tests (commands, subprocess-free call_command)."""

from __future__ import annotations

import asyncio
import contextlib
import threading


@contextlib.contextmanager
def served(server):
    """Run an async fake server on its own event loop in a background thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
