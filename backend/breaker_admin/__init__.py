"""Admin endpoints of the circuit breakers."""
from flask import Blueprint

bp = Blueprint("breaker_admin", __name__, url_prefix="/api/circuit-breaker")

from backend.breaker_admin import routes  # noqa: E402,F401  (registers the views on bp)
