"""GET /openapi.json."""
from __future__ import annotations

from flask import Response, jsonify

from backend.http.context import current_backend
from backend.openapi import bp
from backend.openapi.document import build_document


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document, built from the models the routes validate with."""
    return jsonify(build_document(tuple(current_backend().providers.names())))
