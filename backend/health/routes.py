"""Health endpoints: /health touches nothing; the others report components."""
from __future__ import annotations

from flask import Response

from backend.errors import ServiceUnavailable
from backend.health import bp
from backend.health.report import component_report
from backend.http.context import current_backend
from backend.http.envelope import ok


@bp.get("/health")
def liveness():
    """The process answers: no dependency is touched."""
    return {"status": "ok"}


@bp.get("/health/ready")
def readiness() -> Response:
    """Ready when requests can be served: settings were valid (else no app), the process is not draining before
    it stops (it still serves, so that load balancers can move away: backend/serving/drain.py), and the local store
    answers, which is also the fallback while Redis is down."""
    backend = current_backend()
    if backend.drain.draining:
        raise ServiceUnavailable("Not ready: shutting down, finishing the requests in flight",
                                 details={"draining": True}, retry_after=backend.drain.remaining())
    shared = backend.shared
    if not shared.local_store_answers():
        raise ServiceUnavailable("Not ready: the local store cannot be read", details={"cache": shared.health()},
                                 retry_after=5)
    return ok({"ready": True, "cache": shared.health()})


@bp.get("/api/health")
def component_health() -> Response:
    """Each component's state and the overall healthy / degraded / unhealthy verdict with its reasons."""
    report = component_report(current_backend())
    if report["status"] == "unhealthy":
        raise ServiceUnavailable("Unhealthy: " + "; ".join(report["reasons"]), details=report, retry_after=10)
    return ok(report)


@bp.get("/health/cache")
def cache_health() -> Response:
    """Cache mode and statistics."""
    return ok(current_backend().shared.stats())
