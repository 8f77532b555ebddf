"""GET /dashboard: one page with live health, traffic, cache, cost and breakers, plus the admin actions."""
from __future__ import annotations

from flask import Response, make_response, render_template

from backend.dashboard import bp


@bp.get("/dashboard")
def dashboard() -> Response:
    """The page itself; what it shows comes from /api/health and /api/metrics, fetched by its script.

    Its security headers (a CSP allowing only this service's own script, style and API) come from
    backend/http/hygiene.py, like every other response's.
    """
    response = make_response(render_template("dashboard.html"))
    response.headers["Cache-Control"] = "no-store"
    return response
