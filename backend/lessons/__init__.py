"""Lessons as background jobs, and the jobs' status (contract section 10)."""
from flask import Blueprint

bp = Blueprint("lessons", __name__, url_prefix="/api")

from backend.lessons import routes  # noqa: E402,F401  (registers the views on bp)
