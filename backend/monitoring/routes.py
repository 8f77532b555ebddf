"""GET /metrics (Prometheus, all workers) and GET /api/metrics (JSON summary, all workers).

Both answer without a key. /metrics is for the scraper and exempt from rate limits; /api/metrics, which the dashboard
polls, is limited per address by METRICS_RATE_LIMIT (backend.http.rate_limits), as it costs more to build; with a
valid X-Admin-Key it also lists today's top callers (see _operator).
"""
from __future__ import annotations

from typing import Any

from flask import Response, current_app, request

from backend.composition import Backend
from backend.http.auth import require_admin_key
from backend.http.context import current_backend
from backend.http.envelope import ok
from backend.monitoring import bp
from backend.observability.metrics import exposition

TOP_CALLERS = 5  # the dashboard's table of today's biggest spenders


@bp.get("/metrics")
def prometheus() -> Response:
    """Prometheus text exposition, aggregated over every gunicorn worker, plus live breaker and health gauges."""
    body = exposition(current_app.extensions["backend_live_registry"])
    return Response(body, mimetype="text/plain", headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


@bp.get("/api/metrics")
def summary() -> Response:
    """Per-route count, rates, error rate and latency percentiles over a recent window; cache, upstream, cost;
    conversations and turns today, with the database's state; spend today and budget refusals (contract
    section 12), with today's top callers for an operator only."""
    backend = current_backend()
    data = current_app.extensions["backend_summary"].summary()
    data["breakers"] = {name: breaker.state() for name, breaker in backend.breakers.items()}
    data["today"] = {**backend.conversations.activity_today(), "jobs": backend.jobs.today()}
    data["spend"] = {**_spend_today(backend, with_callers=_operator()), **data["spend"]}
    return ok(data)


def _operator() -> bool:
    """Whether the request carries a valid X-Admin-Key.

    This route is public, but it is the dashboard's only source of figures, and callers' names are personal: the
    top callers are added for an operator only, authenticated as on the admin routes (require_admin_key). So a
    wrong key is refused (401) and counted towards the address's lockout like any other wrong admin key; answering
    without the callers instead would make this route a lockout-free oracle for guessing the key. Without a key,
    or with admin endpoints disabled (no ADMIN_API_KEY), the public summary is answered.
    """
    if not request.headers.get("X-Admin-Key") or not current_backend().settings.admin_key_digest:
        return False
    require_admin_key(lambda: None)()
    return True


def _spend_today(backend: Backend, *, with_callers: bool) -> dict[str, Any]:
    """Spend since 00:00 UTC (every instance's, from the spend meter) and the budgets it is held to; with the top
    callers (their overrides read from the database) for an operator. The public path reads only the meter."""
    budgets = backend.budgets
    spend: dict[str, Any] = {"per_caller_default_usd": budgets.per_caller, "per_key_usd": budgets.per_key}
    if with_callers:
        top = budgets.top_callers(TOP_CALLERS)
        return {"today_usd": top["total_usd"], "top_callers": top["callers"], **spend}
    _, total = budgets.meter.top(1)
    return {"today_usd": round(total, 6), **spend}
