"""See, reset and force open the breakers; each change reaches every worker and instance before it returns."""
from __future__ import annotations

from typing import Literal, Optional

from flask import Response, current_app
from pydantic import BaseModel, ConfigDict

from backend.breaker_admin import bp
from backend.http.auth import require_admin_key
from backend.http.envelope import ok
from backend.http.validation import json_body, optional_json_body

BreakerName = Literal["gemini", "azure_speech"]


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Optional[BreakerName] = None


class OpenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: BreakerName


def _breakers() -> dict:
    return current_app.extensions["backend"].breakers


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
    for name, breaker in _breakers().items():
        if fields.name in (None, name):
            breaker.reset()
    return ok(states())


@bp.post("/open")
@require_admin_key
def force_open() -> Response:
    """Hold one breaker open for maintenance until it is reset."""
    fields = json_body(OpenRequest)
    _breakers()[fields.name].force_open()
    return ok(states())
