"""Per-caller rate limits: envelope, headers, shared AI budget, exemptions, users within a key."""
from __future__ import annotations

import pytest

from tests.envelope import assert_error, assert_ok


def test_ai_limit_is_per_caller_with_headers(make_app, auth, fake_gemini):
    client = make_app(RATE_LIMIT_AI="3/minute").test_client()
    for _ in range(3):
        response = client.post("/api/create_subtopics", json={"topic": "Limits"}, headers=auth)
        assert_ok(response)
        assert response.headers["X-RateLimit-Limit"] == "3"
    refused = client.post("/api/create_subtopics", json={"topic": "Limits"}, headers=auth)
    assert_error(refused, 429, "RATE_LIMITED")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_the_ai_budget_is_shared_by_every_ai_endpoint(make_app, auth):
    client = make_app(RATE_LIMIT_AI="2/minute").test_client()
    assert_ok(client.post("/api/create_subtopics", json={"topic": "A"}, headers=auth))
    assert_ok(client.post("/api/explanation", json={"topic": "A", "subtopic": "B"}, headers=auth))
    assert_error(client.post("/api/analyze", json={"text": "C."}, headers=auth), 429, "RATE_LIMITED")


def test_users_within_a_key_have_their_own_budget(make_app, auth):
    client = make_app(RATE_LIMIT_AI="1/minute").test_client()
    assert_ok(client.post("/api/create_subtopics", json={"topic": "A"}, headers={**auth, "X-User-ID": "u1"}))
    assert_ok(client.post("/api/create_subtopics", json={"topic": "A"}, headers={**auth, "X-User-ID": "u2"}))
    assert_error(client.post("/api/create_subtopics", json={"topic": "A"}, headers={**auth, "X-User-ID": "u1"}),
                 429, "RATE_LIMITED")


def test_health_and_the_prometheus_scrape_are_exempt(make_app):
    client = make_app(RATE_LIMIT_DEFAULT="2/minute", METRICS_RATE_LIMIT="2/minute").test_client()
    for _ in range(5):
        assert client.get("/health").status_code == 200
        assert client.get("/api/health").status_code == 200
        assert client.get("/health/ready").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_the_json_metrics_summary_is_limited_per_address(make_app):
    """GET /api/metrics needs no key and used to be exempt from every limit while each call cost a snapshot."""
    client = make_app(METRICS_RATE_LIMIT="3/minute").test_client()
    hammer = {"REMOTE_ADDR": "203.0.113.30"}
    for _ in range(3):
        assert client.get("/api/metrics", environ_base=hammer).headers["X-RateLimit-Limit"] == "3"
    refused = client.get("/api/metrics", environ_base=hammer)
    assert_error(refused, 429, "RATE_LIMITED")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # An API key does not lift it, and another address (IPv6: another /64) has its own budget.
    assert_error(client.get("/api/metrics", headers={"X-API-Key": "anything"}, environ_base=hammer), 429,
                 "RATE_LIMITED")
    assert_ok(client.get("/api/metrics", environ_base={"REMOTE_ADDR": "198.51.100.31"}))
    # The scrape and health stay open for the limited address.
    assert client.get("/metrics", environ_base=hammer).status_code == 200
    assert client.get("/health", environ_base=hammer).status_code == 200


def test_the_metrics_limit_counts_ipv6_by_its_64(make_app):
    client = make_app(METRICS_RATE_LIMIT="2/minute").test_client()
    statuses = [client.get("/api/metrics", environ_base={"REMOTE_ADDR": f"2001:db8:9:9::{i + 1:x}"}).status_code
                for i in range(4)]
    assert statuses == [200, 200, 429, 429]
    assert client.get("/api/metrics", environ_base={"REMOTE_ADDR": "2001:db8:9:a::1"}).status_code == 200


def test_rate_limit_settings_are_validated(make_app):
    from backend.settings import ConfigError

    for name in ("METRICS_RATE_LIMIT", "RATE_LIMIT_DEFAULT_PER_KEY"):
        with pytest.raises(ConfigError, match=name):
            make_app(**{name: "lots"})


def test_default_limit_applies_elsewhere(make_app, admin):
    client = make_app(RATE_LIMIT_DEFAULT="2/minute").test_client()
    for _ in range(2):
        assert_ok(client.get("/api/cache/stats", headers=admin))
    assert_error(client.get("/api/cache/stats", headers=admin), 429, "RATE_LIMITED")


def test_rate_limited_requests_are_counted(make_app, auth):
    client = make_app(RATE_LIMIT_AI="1/minute").test_client()
    client.post("/api/create_subtopics", json={"topic": "A"}, headers=auth)
    client.post("/api/create_subtopics", json={"topic": "A"}, headers=auth)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'rate_limited_total{route="/api/create_subtopics"}' in text


def test_inventing_user_ids_does_not_escape_the_per_key_limit(make_app, auth):
    client = make_app(RATE_LIMIT_AI="5/minute", RATE_LIMIT_AI_PER_KEY="3/minute").test_client()
    statuses = [client.post("/api/create_subtopics", json={"topic": "A"},
                            headers={**auth, "X-User-ID": f"user-{i}"}).status_code for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
