"""Assertions on the contract's response envelope."""
from __future__ import annotations


def assert_ok(response, status: int = 200) -> dict:
    """Assert a success envelope and return its data."""
    body = response.get_json()
    assert response.status_code == status, body
    assert body["success"] is True and body["error"] is None
    assert_meta(response, body)
    return body["data"]


def assert_error(response, status: int, code: str) -> dict:
    """Assert an error envelope with the given status and code, and return its error."""
    assert response.mimetype == "application/json", response.data[:200]
    body = response.get_json()
    assert response.status_code == status, body
    assert body["success"] is False and body["data"] is None
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert_meta(response, body)
    if status in (429, 503):
        assert int(response.headers["Retry-After"]) >= 1
    return body["error"]


def assert_meta(response, body: dict) -> None:
    """Assert meta carries the request id echoed in the header, a cached flag and a duration."""
    meta = body["meta"]
    assert meta["request_id"] and meta["request_id"] == response.headers["X-Request-ID"]
    assert isinstance(meta["cached"], bool)
    assert meta["duration_ms"] >= 0
