"""Error handlers: every failure becomes the contract's envelope, never an HTML page or a trace."""
from __future__ import annotations

import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from backend import errors
from backend.http.context import current_backend
from backend.http.envelope import fail

logger = logging.getLogger(__name__)

# Werkzeug's HTTP errors, by status, mapped to the contract's error types.
_HTTP_ERRORS: dict[int, type[errors.AppError]] = {
    400: errors.ValidationFailed,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
    429: errors.RateLimited,
}


def handle_app_error(error: errors.AppError) -> Response:
    """Render one of our own errors."""
    if isinstance(error, errors.ProviderError):
        # Refusals we decided ourselves (breaker open, bulkhead full, not configured) are expected in bulk.
        expected = isinstance(error, (errors.ProviderUnavailable, errors.ProviderNotConfigured))
        logger.log(logging.INFO if expected else logging.WARNING, "provider call failed",
                   extra={"error_code": error.code, "provider": error.provider, "error_type": type(error).__name__})
    return fail(error)


def handle_http_exception(error: HTTPException) -> Response:
    """Render Werkzeug's routing and protocol errors (404, 405, 413, ...) in the envelope."""
    status = error.code or 500
    error_type = _HTTP_ERRORS.get(status, errors.ValidationFailed if status < 500 else errors.AppError)
    message = _http_message(error)
    if status == 413:
        limit = current_backend().settings.max_audio_bytes
        message = f"The request body is larger than allowed (MAX_AUDIO_BYTES = {limit} bytes, plus form fields)"
    app_error = error_type(message, status=status)
    response = fail(app_error)
    allowed = getattr(error, "valid_methods", None)  # werkzeug's MethodNotAllowed carries them
    if status == 405 and allowed:
        response.headers["Allow"] = ", ".join(sorted(allowed))
    return response


def handle_unexpected(error: Exception) -> Response:
    """Log an unhandled exception with its trace and answer a bare 500 envelope."""
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    logger.exception("unhandled exception")
    return fail(errors.AppError("Internal error"))


def _http_message(error: HTTPException) -> str:
    """Werkzeug's short description, without its HTML."""
    return (error.description or error.name or "Error").strip()


def register_error_handlers(app: Flask) -> None:
    """Install the handlers on the app."""
    app.register_error_handler(errors.AppError, handle_app_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
