"""Small helpers shared by the bench scripts: Django on bench databases, tables, percentiles.

    from bench.common import setup_django
    aliases = setup_django(pg_url="postgres://postgres@127.0.0.1:5432/rrr_bench")

``setup_django`` must run before any Django import that touches settings. ``default`` is always a
fresh SQLite file (WAL, as the embedded default) in a temporary directory; ``pg`` is added when a
PostgreSQL URL is given (the database is created if missing). Both are migrated.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/rrr_bench"
MARKETDATA_TABLES = (
    "marketdata_tradetick",
    "marketdata_bar",
    "marketdata_quote",
    "marketdata_booksnapshot",
    "marketdata_sentimentreading",
    "marketdata_dataqualityevent",
)


def ensure_pg_database(url: str) -> None:
    """Create the database named in ``url`` when it does not exist (needs CREATEDB)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def pg_database_settings(url: str) -> dict:
    """Return a Django DATABASES entry for ``url`` (plain backend, persistent connection)."""
    import environ

    config = environ.Env.db_url_config(url)
    config["ENGINE"] = "django.db.backends.postgresql"
    config["CONN_MAX_AGE"] = None
    return config


def setup_django(*, pg_url: str | None = None, data_dir: Path | None = None) -> dict[str, str]:
    """Configure Django on bench databases, migrate them; return {backend: alias}."""
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="rrr-bench-"))
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ["RRR_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "rrr_site.settings"
    import django
    from django.conf import settings

    aliases = {"sqlite": "default"}
    if pg_url:
        ensure_pg_database(pg_url)
        settings.DATABASES["pg"] = pg_database_settings(pg_url)
        aliases["postgresql"] = "pg"
    django.setup()
    from django.core.management import call_command

    for alias in aliases.values():
        call_command("migrate", database=alias, verbosity=0, interactive=False)
    return aliases


def truncate_marketdata(alias: str, tables: Sequence[str] = MARKETDATA_TABLES) -> None:
    """Empty the market-data tables of ``alias`` (keeps symbols)."""
    from django.db import connections

    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)}")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def percentile(ordered: Sequence[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of sorted samples, nearest-rank."""
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def latency_summary(samples_s: Iterable[float]) -> dict[str, float]:
    """Return count, mean, p50, p90, p99, p99.9 and max of latencies, in milliseconds."""
    ordered = sorted(s * 1000.0 for s in samples_s)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "mean": sum(ordered) / len(ordered),
        "p50": percentile(ordered, 0.50),
        "p90": percentile(ordered, 0.90),
        "p99": percentile(ordered, 0.99),
        "p99.9": percentile(ordered, 0.999),
        "max": ordered[-1],
    }


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]], title: str = "") -> None:
    """Print rows as an aligned text table (numbers right-aligned, with thousands separators)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    if title:
        print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(
            "  ".join(
                c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True)
            )
        )


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "").replace("-", "").replace("%", "").isdigit()
