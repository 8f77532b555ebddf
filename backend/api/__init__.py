"""The AI endpoints."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from backend.api import routes  # noqa: E402,F401  (registers the views on bp)
