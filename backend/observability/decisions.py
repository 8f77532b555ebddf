"""One structured log line and one metric per resilience decision."""
from __future__ import annotations

import logging
from typing import Any

from backend.observability import metrics

logger = logging.getLogger("backend.policy")
# Decisions that can happen on every request stay at DEBUG: the access line already carries the cache result and
# the status, the metric counts them, and an outage must not double the log volume. Breaker transitions, retries
# and bulkhead refusals stay at INFO.
_QUIET = {"cache_hit", "joined_flight", "short_circuited", "served_stale"}


def record_decision(provider: str, operation: str, decision: str, **extra: Any) -> None:
    """Count the decision and log it with its context (never request content)."""
    metrics.POLICY_DECISIONS.labels(provider, operation, decision).inc()
    level = logging.DEBUG if decision in _QUIET else logging.INFO
    if logger.isEnabledFor(level):
        logger.log(level, "policy decision", extra={"decision": decision, "provider": provider,
                                                    "operation": operation, **extra})
