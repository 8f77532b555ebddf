"""Request parsing with pydantic: field-level VALIDATION_ERROR details, never a 500."""
from __future__ import annotations

from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from backend.errors import PayloadTooLarge, ValidationFailed

# Every JSON body of the API is small (a text is at most 5,000 characters); audio travels as multipart.
MAX_JSON_BYTES = 256 * 1024

M = TypeVar("M", bound=BaseModel)


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Turn pydantic's errors into [{field, message, type}] without echoing the input."""
    return [{"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)]


def validate(model: type[M], data: Any) -> M:
    """Validate a mapping against a model, raising VALIDATION_ERROR 422 with field details."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("Request validation failed", details=field_errors(exc), status=422) from None


def _capped_body() -> bytes:
    """The raw body, reading at most MAX_JSON_BYTES.

    The cap is on what is read, not on what is declared: a chunked body declares no length, and was once read
    whole (10 MB) up to the audio upload limit. Flask applies a per-request max_content_length to the stream as
    it is read, chunked or not; it stops at the limit without saying whether more was sent, so one byte more
    than the cap is allowed in, and seeing it is what refuses the body.
    """
    too_large = PayloadTooLarge(f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    if (request.content_length or 0) > MAX_JSON_BYTES:
        raise too_large
    request.max_content_length = min(MAX_JSON_BYTES + 1, request.max_content_length or MAX_JSON_BYTES + 1)
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(raw) > MAX_JSON_BYTES:
        raise too_large
    return raw


def json_body(model: type[M]) -> M:
    """Parse the request's JSON object body against a model (400 when it is not a JSON object)."""
    _capped_body()
    try:
        data = request.get_json(silent=True)  # parses the body read above, from Flask's cache
    except RecursionError:  # absurdly nested JSON: the parser gives up, and so do we
        data = None
    if not isinstance(data, dict):
        raise ValidationFailed("The body must be a JSON object (Content-Type: application/json)",
                               details=[{"field": "body", "message": "expected a JSON object", "type": "json_invalid"}])
    return validate(model, data)


def is_json_request() -> bool:
    """Whether the request declares a JSON body."""
    return request.mimetype == "application/json"


def optional_json_body(model: type[M]) -> M:
    """Like json_body, but an empty body means `{}` (admin calls whose fields are all optional)."""
    if not _capped_body():
        return validate(model, {})
    return json_body(model)
