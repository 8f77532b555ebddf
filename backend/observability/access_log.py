"""One access line and the HTTP metrics per request: route template, method, status, duration, cache result."""
from __future__ import annotations

import functools
import logging
import time
from typing import Any

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


@functools.cache
def _series(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The request counter's and the duration histogram's children for these labels, resolved once per process:
    labels() takes the metric's lock and rebuilds its key on every call. The labels are bounded (route templates,
    methods, statuses), and so is this cache."""
    return metrics.HTTP_REQUESTS.labels(route, method, str(status)), metrics.HTTP_DURATION.labels(route, method)


def _log_access(response: Response) -> Response:
    """Emit the access line and the request metrics."""
    started = g.get("started_at")
    seconds = time.perf_counter() - started if started else 0.0
    route, method = route_template(), method_label()
    requests, duration = _series(route, method, response.status_code)
    requests.inc()
    duration.observe(seconds)
    if logger.isEnabledFor(logging.INFO):  # the line's fields are gathered only when it is written
        logger.info("request", extra={
            "route": route, "method": method, "status": response.status_code,
            "duration_ms": round(seconds * 1000, 2), "cache": response.headers.get("X-Cache"),
            "client": g.get("client_name"),
        })
    return response


def init_access_log(app: Flask) -> None:
    """Register the access log hook."""
    app.after_request(_log_access)
