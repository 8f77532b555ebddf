"""Parse metrics and log lines: how often answers fail or need repair, of which kind, and the time it takes."""
from __future__ import annotations

import logging
from typing import Sequence

from backend.observability import metrics

logger = logging.getLogger("backend.llm")


def record(source: str, seconds: float, *, kinds: Sequence[str] = (), fields: Sequence[str] = (),
           failure: str = "", chars: int = 0) -> None:
    """Count a failure or each repair kind, time the parse, and log what was done (never the model's text)."""
    metrics.JSON_PARSE_SECONDS.labels(source=source).observe(seconds)
    if failure:
        metrics.JSON_PARSE_FAILURES.labels(source=source).inc()
    for kind in kinds:  # an answer repaired in two ways counts once under each kind
        metrics.JSON_PARSE_REPAIRS.labels(source=source, kind=kind).inc()
    extra = {"source": source, "chars": chars, "parse_ms": round(seconds * 1000, 3)}
    if failure:
        logger.info("model output unusable", extra={**extra, "reason": failure})
    elif kinds:
        logger.info("model output repaired", extra={**extra, "repair_kind": ",".join(kinds),
                                                    "fields": list(fields)[:20]})
