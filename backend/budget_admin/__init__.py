"""Admin endpoints of the daily budgets: overrides per caller, and today's top spenders."""
from flask import Blueprint

bp = Blueprint("budget_admin", __name__, url_prefix="/api/admin")

from backend.budget_admin import routes  # noqa: E402,F401  (registers the views on bp)
