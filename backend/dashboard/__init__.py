"""The operators' dashboard page."""
from flask import Blueprint

bp = Blueprint("dashboard", __name__)

from backend.dashboard import routes  # noqa: E402,F401  (registers the views on bp)
