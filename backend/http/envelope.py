"""The response envelope of every API answer: success, data, error, meta."""
from __future__ import annotations

import math
import time
from typing import Any

from flask import Response, g, jsonify

from backend.errors import AppError

DEFAULT_RETRY_AFTER_SECONDS = 30


def _meta(cached: bool, provider: str | None = None) -> dict[str, Any]:
    """Build `meta` from what the request recorded in `g` (and, on AI answers, the provider that answered)."""
    started = g.get("started_at")
    duration_ms = round((time.perf_counter() - started) * 1000, 1) if started else 0.0
    meta = {"request_id": g.get("request_id", ""), "cached": cached, "duration_ms": duration_ms}
    if provider:
        meta["provider"] = provider
    return meta


def ok(data: Any, *, status: int = 200, cached: bool = False, headers: dict[str, str] | None = None,
       provider: str | None = None) -> Response:
    """Return a success envelope."""
    response = jsonify({"success": True, "data": data, "error": None, "meta": _meta(cached, provider)})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def fail(error: AppError) -> Response:
    """Return the error envelope of an AppError, with Retry-After when it has one."""
    body = {"code": error.code, "message": error.message, "details": error.details}
    response = jsonify({"success": False, "data": None, "error": body, "meta": _meta(False)})
    response.status_code = error.status
    retry_after = error.retry_after
    if retry_after is None and error.status in (429, 503):
        retry_after = DEFAULT_RETRY_AFTER_SECONDS  # the contract: every 429 and 503 says when to come back
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response
