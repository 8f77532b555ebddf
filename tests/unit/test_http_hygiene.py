"""Security headers, CORS by origin list, ProxyFix, and failed-auth limiting per address."""
from __future__ import annotations

import pytest

from tests.envelope import assert_error


def test_security_headers_on_every_response(client, auth):
    for response in (client.get("/health"), client.get("/api/nope"),
                     client.post("/api/create_subtopics", json={"topic": "X"}, headers=auth)):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_api_answers_are_not_cached_by_intermediaries(client, auth):
    assert client.post("/api/create_subtopics", json={"topic": "X"}, headers=auth).headers["Cache-Control"] == \
        "no-store"


def test_cors_is_off_by_default(client):
    response = client.options("/api/analyze", headers={"Origin": "https://app.example.org",
                                                       "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_allows_only_listed_origins(make_app, auth):
    client = make_app(CORS_ALLOWED_ORIGINS="https://app.example.org").test_client()
    allowed = client.options("/api/analyze", headers={"Origin": "https://app.example.org",
                                                      "Access-Control-Request-Method": "POST",
                                                      "Access-Control-Request-Headers": "X-API-Key"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
    other = client.post("/api/create_subtopics", json={"topic": "X"},
                        headers={**auth, "Origin": "https://evil.example.net"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_proxy_fix_trusts_the_configured_hops(make_app, auth, caplog):
    client = make_app(TRUSTED_PROXIES=1, AUTH_FAILURE_LIMIT_PER_MINUTE=1).test_client()
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    client.post("/api/analyze", json={"text": "x"}, headers={**headers, "X-API-Key": "bad"})
    # the failure was counted against the forwarded address, not the proxy's
    assert_error(client.post("/api/analyze", json={"text": "x"}, headers={**headers, "X-API-Key": "bad2"}), 429,
                 "RATE_LIMITED")
    assert client.get("/health", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 200
    ok = client.post("/api/create_subtopics", json={"topic": "X"},
                     headers={**auth, "X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"})
    assert ok.status_code == 200 and "Strict-Transport-Security" in ok.headers


def test_failed_authentication_is_limited_per_address(make_app, auth, admin):
    client = make_app(AUTH_FAILURE_LIMIT_PER_MINUTE=3).test_client()
    for _ in range(3):
        assert_error(client.post("/api/analyze", json={"text": "x"}, headers={"X-API-Key": "guess"}), 401,
                     "UNAUTHORIZED")
    assert_error(client.post("/api/analyze", json={"text": "x"}, headers={"X-API-Key": "guess"}), 429,
                 "RATE_LIMITED")
    assert_error(client.get("/api/cache/stats", headers={"X-Admin-Key": "guess"}), 429, "RATE_LIMITED")
    # The right keys from that address are refused too, for the window: otherwise guessing went on at full speed
    # and the right guess was served (tests/unit/test_auth_lockout.py has the rest).
    assert_error(client.post("/api/create_subtopics", json={"topic": "Still me"}, headers=auth), 429, "RATE_LIMITED")
    assert_error(client.get("/api/cache/stats", headers=admin), 429, "RATE_LIMITED")
    other = {"REMOTE_ADDR": "198.51.100.77"}
    assert client.post("/api/create_subtopics", json={"topic": "Not me"}, headers=auth,
                       environ_base=other).status_code == 200


def test_client_and_admin_keys_are_not_interchangeable(client, auth, admin):
    assert_error(client.get("/api/cache/stats", headers={"X-Admin-Key": auth["X-API-Key"]}), 401, "UNAUTHORIZED")
    assert_error(client.post("/api/analyze", json={"text": "x"}, headers={"X-API-Key": admin["X-Admin-Key"]}), 401,
                 "UNAUTHORIZED")


def test_keys_are_held_as_digests(app):
    from tests.conftest import ADMIN_KEY, CLIENT_KEY

    settings = app.extensions["backend"].settings
    assert CLIENT_KEY not in repr(settings) and ADMIN_KEY not in repr(settings)
    assert CLIENT_KEY not in str(settings.client_keys) and ADMIN_KEY not in settings.admin_key_digest


@pytest.mark.parametrize("path", ["/api//health", "//health", "/api/health/", "/dashboard//", "/health//ready"])
def test_no_redirect_is_built_from_an_untrusted_host(client, path):
    """The attack: `GET /api//health` with `Host: evil.example` was redirected to http://evil.example/api/health."""
    response = client.get(path, headers={"Host": "evil.example"})
    assert response.status_code not in (301, 302, 303, 307, 308), (path, response.status_code)
    assert "evil.example" not in response.headers.get("Location", "")
