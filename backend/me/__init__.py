"""The caller's own data (contract section 7): erase everything stored for them, and see today's usage."""
from flask import Blueprint

bp = Blueprint("me", __name__, url_prefix="/api/me")

from backend.me import routes  # noqa: E402,F401  (registers the views on bp)
