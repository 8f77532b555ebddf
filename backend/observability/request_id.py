"""X-Request-ID: taken from the caller when well-formed, generated otherwise, echoed on the response."""
from __future__ import annotations

import re
import time
import uuid

from flask import Flask, Response, g, request

HEADER = "X-Request-ID"
_WELL_FORMED = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def _begin_request() -> None:
    """Stamp the request with its id and start time."""
    g.started_at = time.perf_counter()
    supplied = request.headers.get(HEADER, "")
    g.request_id = supplied if _WELL_FORMED.match(supplied) else uuid.uuid4().hex


def _echo_request_id(response: Response) -> Response:
    """Put the request id on the response."""
    response.headers[HEADER] = g.get("request_id", "")
    return response


def init_request_id(app: Flask) -> None:
    """Register the request id hooks (first, so every other hook and log line sees the id)."""
    app.before_request_funcs.setdefault(None, []).insert(0, _begin_request)
    app.after_request(_echo_request_id)
