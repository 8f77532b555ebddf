"""Pieces of the OpenAPI document shared by many operations: the envelope, errors, bodies, security."""
from __future__ import annotations

from typing import Any

CLIENT: list[dict[str, list[str]]] = [{"ApiKey": []}, {"Bearer": []}]
ADMIN: list[dict[str, list[str]]] = [{"AdminKey": []}]
_META = {"type": "object", "required": ["request_id", "cached", "duration_ms"], "properties": {
    "request_id": {"type": "string"}, "cached": {"type": "boolean"}, "duration_ms": {"type": "number"}}}
_DESCRIPTIONS = {400: "The body is not a JSON object", 401: "Missing or wrong key", 403: "Admin endpoints disabled",
                 404: "No such resource (or another caller's)", 409: "Conflict (Retry-After when it will pass)",
                 413: "Payload too large", 415: "Unsupported media type (audio not decodable)",
                 422: "Validation failed (field details)",
                 429: "Rate limited, or a daily budget spent (BUDGET_EXCEEDED); Retry-After says when to retry",
                 502: "The AI provider failed",
                 503: "Provider or database unavailable, or not configured (Retry-After)",
                 504: "The AI provider timed out"}


def open_object() -> dict[str, Any]:
    """Any JSON object."""
    return {"type": "object"}


def plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON response outside the envelope."""
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def envelope(data: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    """A success envelope around `data`."""
    schema = {"type": "object", "required": ["success", "data", "error", "meta"], "properties": {
        "success": {"const": True}, "data": data, "error": {"type": "null"}, "meta": _META}}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_responses(statuses: tuple[int, ...]) -> dict[str, Any]:
    """Error envelopes for the given statuses."""
    schema = {"type": "object", "required": ["success", "data", "error", "meta"], "properties": {
        "success": {"const": False}, "data": {"type": "null"}, "meta": _META,
        "error": {"type": "object", "required": ["code", "message", "details"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}}
    return {str(status): {"description": _DESCRIPTIONS.get(status, "Error"),
                          "content": {"application/json": {"schema": schema}}} for status in statuses}


def json_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """A JSON request body."""
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def multipart_audio(fields: dict[str, Any], required: list[str], url_schema: dict[str, Any]) -> dict[str, Any]:
    """Audio as a multipart upload (field `audio`) or as JSON naming an `audio_url`."""
    form = {"type": "object", "required": ["audio", *required], "additionalProperties": False,
            "properties": {"audio": {"type": "string", "format": "binary",
                                     "contentMediaType": "application/octet-stream"}, **fields}}
    return {"required": True, "content": {"multipart/form-data": {"schema": form},
                                          "application/json": {"schema": url_schema}}}
