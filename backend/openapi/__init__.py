"""The OpenAPI document of the service."""
from flask import Blueprint

bp = Blueprint("openapi", __name__)

from backend.openapi import routes  # noqa: E402,F401  (registers the views on bp)
