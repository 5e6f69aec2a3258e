"""django-q2 tasks of the market-data app: load by id, call the service, return the outcome."""

from __future__ import annotations

import logging
from typing import Any

from marketdata.backfill import SourceOptions, backfill_execute, page_source_open
from marketdata.models import BackfillJob

logger = logging.getLogger(__name__)

BACKFILL_TASK = "marketdata.tasks.backfill_task"


def backfill_task(job_id: int, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or resume) backfill job ``job_id``; return its summary, raise when it fails.

    ``options`` are ``SourceOptions`` fields except the API key, which never travels through
    the broker: the worker reads it from its settings.
    """
    opts = SourceOptions(**{k: v for k, v in (options or {}).items() if k != "api_key"})
    job = BackfillJob.objects.select_related("symbol").get(pk=job_id)
    source = page_source_open(job.source, job.symbol.name, job.timeframe, opts)
    try:
        result = backfill_execute(job, source)
    finally:
        source.close()
    logger.info(
        "backfill job %s completed: %s bars written, %s missing",
        job_id,
        result.rows_written,
        result.report.missing,
    )
    return result.as_dict()
