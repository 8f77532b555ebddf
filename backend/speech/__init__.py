"""Speech synthesis (contract section 9): POST /api/speech, GET /api/speech/{id}, GET /api/voices."""
from flask import Blueprint

bp = Blueprint("speech", __name__, url_prefix="/api")

from backend.speech import routes  # noqa: E402,F401  (registers the views on bp)
