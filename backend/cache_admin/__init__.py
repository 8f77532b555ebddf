"""Admin endpoints of the cache."""
from flask import Blueprint

bp = Blueprint("cache_admin", __name__, url_prefix="/api/cache")

from backend.cache_admin import routes  # noqa: E402,F401  (registers the views on bp)
