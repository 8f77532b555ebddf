"""Tutor conversations (contract section 8)."""
from flask import Blueprint

bp = Blueprint("conversations", __name__, url_prefix="/api/conversations")

from backend.conversations import routes  # noqa: E402,F401  (registers the views on bp)
