"""GET /metrics (Prometheus, all workers) and GET /api/metrics (JSON summary, all workers).

Both answer without a key. /metrics is for the scraper and exempt from rate limits; /api/metrics, which the dashboard
polls, is limited per address by METRICS_RATE_LIMIT (backend.http.rate_limits), as it costs more to build.
"""
from __future__ import annotations

from flask import Response, current_app

from backend.http.context import current_backend
from backend.http.envelope import ok
from backend.monitoring import bp
from backend.observability.metrics import exposition


@bp.get("/metrics")
def prometheus() -> Response:
    """Prometheus text exposition, aggregated over every gunicorn worker, plus live breaker and health gauges."""
    body = exposition(current_app.extensions["backend_live_registry"])
    return Response(body, mimetype="text/plain", headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


@bp.get("/api/metrics")
def summary() -> Response:
    """Per-route count, rates, error rate and latency percentiles over a recent window; cache, upstream, cost;
    conversations and turns today, with the database's state."""
    backend = current_backend()
    data = current_app.extensions["backend_summary"].summary()
    data["breakers"] = {name: breaker.state() for name, breaker in backend.breakers.items()}
    data["today"] = {**backend.conversations.activity_today(), "jobs": backend.jobs.today()}
    return ok(data)
