"""The security headers are added once each, and never over a response's own (whatever the case of its name)."""
from __future__ import annotations

from flask import Response

NAMES = ["X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Cross-Origin-Resource-Policy",
         "Content-Security-Policy", "Cache-Control"]


def test_each_header_once_in_order(make_app, auth):
    response = make_app().test_client().post("/api/analyze", json={"text": "I goes home."}, headers=auth)
    assert response.status_code == 200
    assert [response.headers.getlist(name) for name in NAMES] == [
        ["nosniff"], ["DENY"], ["no-referrer"], ["same-origin"],
        ["default-src 'none'; frame-ancestors 'none'; base-uri 'none'"], ["no-store"]]
    names = [name for name, _ in response.headers]
    assert names[names.index("X-Content-Type-Options"):][:len(NAMES)] == NAMES
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP


def test_a_responses_own_headers_are_kept(make_app):
    app = make_app()
    app.add_url_rule("/api/own", "own", lambda: Response("{}", mimetype="application/json", headers={
        "cache-control": "max-age=60", "x-frame-options": "SAMEORIGIN",
        "content-security-policy": "default-src 'self'"}))
    response = app.test_client().get("/api/own", base_url="https://localhost")
    assert response.headers.getlist("Cache-Control") == ["max-age=60"]
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers.getlist("Content-Security-Policy") == ["default-src 'self'"]
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    assert response.headers.getlist("Strict-Transport-Security") == ["max-age=31536000; includeSubDomains"]
