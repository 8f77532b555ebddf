"""Envelope, error codes, request ids, auth and validation on every kind of route."""
from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.envelope import assert_error, assert_ok


def test_liveness_touches_nothing(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert response.headers["X-Request-ID"]


def test_unknown_route_is_a_json_404(client):
    assert_error(client.get("/api/nope"), 404, "NOT_FOUND")
    assert_error(client.get("/not/under/api"), 404, "NOT_FOUND")


def test_wrong_method_is_a_json_405_with_allow(client, auth):
    response = client.get("/api/analyze", headers=auth)
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in response.headers["Allow"]


def test_oversized_body_is_a_json_413(make_app, auth):
    client = make_app(MAX_AUDIO_BYTES=2048).test_client()
    response = client.post("/api/analyze", data=b"x" * 200_000, headers={**auth, "Content-Type": "application/json"})
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_unhandled_exception_is_a_bare_500_without_trace(app, caplog):
    def explode():
        raise RuntimeError("secret internals")

    app.add_url_rule("/api/explode", "explode", explode)
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/api/explode")
    error = assert_error(response, 500, "INTERNAL_ERROR")
    assert "secret internals" not in json.dumps(error) and "Traceback" not in response.get_data(as_text=True)
    assert any(r.exc_info for r in caplog.records), "the trace belongs in the log"


def test_request_id_is_taken_when_well_formed_and_replaced_otherwise(client):
    supplied = client.get("/health", headers={"X-Request-ID": "abc-123-def-456"})
    assert supplied.headers["X-Request-ID"] == "abc-123-def-456"
    forged = client.get("/health", headers={"X-Request-ID": "bad id <script>"})
    assert forged.headers["X-Request-ID"] != "bad id <script>" and len(forged.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {CLIENT_KEY}"}])
def test_client_auth_refuses_missing_or_wrong_keys(client, headers, fake_gemini):
    assert_error(client.post("/api/analyze", json={"text": "Hi."}, headers=headers), 401, "UNAUTHORIZED")
    assert fake_gemini.calls == 0


def test_bearer_token_is_accepted(client):
    assert_ok(client.post("/api/create_subtopics", json={"topic": "Sport"},
                          headers={"Authorization": f"Bearer {CLIENT_KEY}"}))


def test_auth_is_off_in_development_without_keys(make_app):
    client = make_app(API_KEYS="", APP_ENV="development").test_client()
    assert_ok(client.post("/api/create_subtopics", json={"topic": "Sport"}))


@pytest.mark.parametrize("body, field", [
    ({"text": ""}, "text"),
    ({"text": "   "}, "text"),
    ({"text": "x" * 5001}, "text"),
    ({"text": "ok", "level": "D4"}, "level"),
    ({"text": "ok", "unexpected": 1}, "unexpected"),
    ({}, "text"),
])
def test_validation_errors_name_the_field(client, auth, body, field, fake_gemini):
    error = assert_error(client.post("/api/analyze", json=body, headers=auth), 422, "VALIDATION_ERROR")
    assert field in {d["field"] for d in error["details"]}
    assert fake_gemini.calls == 0


@pytest.mark.parametrize("body", [{"topic": "x", "count": 2}, {"topic": "x", "count": 13}, {"topic": ""}])
def test_subtopic_bounds(client, auth, body):
    assert_error(client.post("/api/create_subtopics", json=body, headers=auth), 422, "VALIDATION_ERROR")


@pytest.mark.parametrize("data, content_type", [(b"{not json", "application/json"), (b"[1, 2]", "application/json"),
                                                (b"text=hi", "application/x-www-form-urlencoded")])
def test_non_object_bodies_are_400(client, auth, data, content_type):
    response = client.post("/api/analyze", data=data, headers={**auth, "Content-Type": content_type})
    assert_error(response, 400, "VALIDATION_ERROR")


def test_component_health_reports_providers(client):
    data = assert_ok(client.get("/api/health"))
    assert data["status"] == "healthy"
    assert data["components"]["providers"]["gemini"]["configured"] is True


def test_component_health_is_degraded_with_a_reason_when_unconfigured(make_app):
    data = assert_ok(make_app(GEMINI_API_KEY="").test_client().get("/api/health"))
    assert data["status"] == "degraded" and "gemini is not configured" in data["reasons"]


def test_readiness(client):
    assert assert_ok(client.get("/health/ready"))["ready"] is True


def test_access_line_per_request_with_route_status_duration_and_request_id(client, auth, caplog):
    with caplog.at_level(logging.INFO, logger="backend.access"):
        response = client.post("/api/create_subtopics", json={"topic": "Weather"},
                               headers={**auth, "X-Request-ID": "req-0000-1111"})
    lines = [r for r in caplog.records if r.name == "backend.access"]
    assert len(lines) == 1
    line = lines[0]
    assert (line.route, line.method, line.status) == ("/api/create_subtopics", "POST", response.status_code)
    assert line.duration_ms > 0 and line.request_id == "req-0000-1111"
    assert CLIENT_KEY not in caplog.text and ADMIN_KEY not in caplog.text
