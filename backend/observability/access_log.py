"""One access line and the HTTP metrics per request: route template, method, status, duration, cache result."""
from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from backend.observability import metrics

logger = logging.getLogger("backend.access")


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label() -> str:
    """The request method, or OTHER: any token is a method to gunicorn, and labels must stay bounded."""
    return request.method if request.method in _METHODS else "OTHER"


def route_template() -> str:
    """The matched route's template (bounded cardinality), never the raw path."""
    return request.url_rule.rule if request.url_rule is not None else "<unmatched>"


def _log_access(response: Response) -> Response:
    """Emit the access line and the request metrics."""
    started = g.get("started_at")
    seconds = time.perf_counter() - started if started else 0.0
    duration_ms = round(seconds * 1000, 2)
    route, method = route_template(), method_label()
    metrics.HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
    metrics.HTTP_DURATION.labels(route, method).observe(seconds)
    logger.info("request", extra={
        "route": route, "method": method, "status": response.status_code,
        "duration_ms": duration_ms, "cache": response.headers.get("X-Cache"),
        "client": g.get("client_name"),
    })
    return response


def init_access_log(app: Flask) -> None:
    """Register the access log hook."""
    app.after_request(_log_access)
