"""Metrics endpoints: Prometheus text and the JSON summary."""
from flask import Blueprint

bp = Blueprint("monitoring", __name__)

from backend.monitoring import routes  # noqa: E402,F401  (registers the views on bp)
