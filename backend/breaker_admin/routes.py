"""See, reset and force open the breakers; each change reaches every worker and instance before it returns."""
from __future__ import annotations

from typing import Callable

from flask import Response

from backend.breaker_admin import bp
from backend.errors import ServiceUnavailable, ValidationFailed
from backend.http.auth import require_admin_key
from backend.http.context import current_backend
from backend.http.envelope import ok
from backend.http.validation import json_body, optional_json_body
from backend.resilience.store import StoreUnavailable
from backend.schemas.admin import OpenRequest, ResetRequest


def _breakers() -> dict:
    return current_backend().breakers


def states() -> dict:
    """Every breaker's state, failure rate, calls in window, opened at and next probe at."""
    return {"breakers": {name: breaker.state() for name, breaker in _breakers().items()}}


@bp.get("/state")
@require_admin_key
def state() -> Response:
    return ok(states())


@bp.post("/reset")
@require_admin_key
def reset() -> Response:
    """Close one breaker (`{"name": "gemini"}`) or all of them."""
    fields = optional_json_body(ResetRequest)
    _known(fields.name)
    for name, breaker in _breakers().items():
        if fields.name in (None, name):
            _change(breaker.reset, name, "reset")
    return ok(states())


@bp.post("/open")
@require_admin_key
def force_open() -> Response:
    """Hold one breaker open for maintenance until it is reset."""
    fields = json_body(OpenRequest)
    _known(fields.name)
    _change(_breakers()[fields.name].force_open, fields.name, "forced open")
    return ok(states())


def _known(name: str | None) -> None:
    """An unknown breaker name is the caller's mistake (422), like any invalid field."""
    if name is not None and name not in _breakers():
        raise ValidationFailed("Request validation failed", status=422, details=[
            {"field": "name", "message": f"no breaker is named {name!r}; known: {', '.join(_breakers())}",
             "type": "unknown_breaker"}])


def _change(change: Callable[[], None], name: str, what: str) -> None:
    """Apply an operator's change, or answer 503 when the shared state cannot take it: a change that reached
    this process alone would be neither effective everywhere nor kept once the store is back."""
    try:
        change()
    except StoreUnavailable as exc:
        raise ServiceUnavailable(f"{exc.summary}: the {name} breaker was not {what} (retry when it is back)",
                                 retry_after=5) from None
