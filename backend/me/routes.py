"""Routes over the caller's own data: resolve the caller, call the learner data service."""
from __future__ import annotations

from flask import Response

from backend.http.auth import require_client_key
from backend.http.caller import current_caller
from backend.http.context import current_backend
from backend.http.envelope import ok
from backend.me import bp


@bp.delete("")
@require_client_key
def erase() -> Response:
    """Erase everything stored for the caller; how much of each kind was deleted."""
    return ok({"deleted": current_backend().learner_data.erase(current_caller())})


@bp.get("/usage")
@require_client_key
def usage() -> Response:
    """Today's spend and requests, the caller's budget and what is left of it, and what the caller keeps."""
    return ok(current_backend().budgets.usage(current_caller()))
