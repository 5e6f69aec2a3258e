"""The image's health check: ``python -m rrr_site.healthcheck [--tcp PORT | --port PORT]``.

The web (the image's default command) is healthy when ``GET /health`` answers 200. The request
names a host of ``ALLOWED_HOSTS``: in production those are the site's names, and Django answers
a request for ``127.0.0.1`` with 400 (DisallowedHost), so a check of the bare address marked every
production web container unhealthy and logged a security error every 30 s. The qcluster and
runtrader services of the same image serve no web; they are healthy while their metrics port
accepts connections (``--tcp``; an answer of any kind, even 403, means the process serves).

Standard library only, no Django: it runs every 30 s in each container.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import urllib.error
import urllib.request


def web_host(allowed_hosts: str) -> str:
    """Return a host name Django's ``ALLOWED_HOSTS`` admits (``.example.com`` -> example.com)."""
    for entry in allowed_hosts.split(","):
        host = entry.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"  # nothing set (development's defaults admit it) or "*"


def check_web(port: int, host: str, timeout: float = 4.0) -> bool:
    """Return True if ``GET /health`` on this container answers 200."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def check_tcp(port: int, timeout: float = 4.0) -> bool:
    """Return True if something accepts connections on this container's ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Return 0 (healthy) or 1, as Docker's HEALTHCHECK reads an exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="the web's port")
    parser.add_argument("--tcp", type=int, metavar="PORT", help="only check that PORT accepts")
    args = parser.parse_args(argv)
    if args.tcp is not None:
        return 0 if check_tcp(args.tcp) else 1
    host = web_host(os.environ.get("ALLOWED_HOSTS", ""))
    return 0 if check_web(args.port, host) else 1


if __name__ == "__main__":
    sys.exit(main())
