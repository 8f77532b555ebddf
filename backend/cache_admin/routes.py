"""Cache statistics and clearing; a clear reaches every worker and instance before it returns."""
from __future__ import annotations

from flask import Response

from backend.cache_admin import bp
from backend.errors import ServiceUnavailable
from backend.http.auth import require_admin_key
from backend.http.context import current_backend
from backend.http.envelope import ok
from backend.http.validation import optional_json_body
from backend.resilience.store import StoreUnavailable
from backend.schemas.admin import ClearRequest


@bp.get("/stats")
@require_admin_key
def stats() -> Response:
    """Mode, tiers, hits and misses per namespace and tier, sizes, Redis connectivity."""
    return ok(current_backend().shared.stats())


@bp.post("/clear")
@require_admin_key
def clear() -> Response:
    """Clear one namespace (`{"namespace": "analyze"}`) or everything (no body)."""
    fields = optional_json_body(ClearRequest)
    try:
        return ok(current_backend().shared.cache.clear(fields.namespace))
    except StoreUnavailable as exc:
        # Name the store that failed (Redis, or the cache disk), never its address.
        raise ServiceUnavailable(f"{exc.summary}: the cache was not cleared "
                                 "(retry when it is back)", retry_after=5) from None
