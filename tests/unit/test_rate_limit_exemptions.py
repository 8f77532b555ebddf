"""flask-limiter does no work on the requests it exempts (health, the scrape, every AI endpoint, unmatched paths),
and all of its work, headers included, on the others."""
from __future__ import annotations

from tests.envelope import assert_error, assert_ok


def identified_requests(app) -> list[str]:
    """The endpoints flask-limiter identifies (the first step of its check on every request it looks at)."""
    limiter = app.extensions["backend_limiter"]
    identify, seen = limiter.identify_request, []

    def counting() -> str:
        seen.append(identify())
        return seen[-1]

    limiter.identify_request = counting
    return seen


def test_exempt_requests_never_reach_flask_limiter(make_app, auth):
    app = make_app(RATE_LIMIT_DEFAULT="2/minute")
    seen = identified_requests(app)
    client = app.test_client()
    for _ in range(3):
        for response in (client.get("/health"), client.get("/metrics"), client.get("/openapi.json"),
                         client.get("/api/voices", headers=auth),  # an AI endpoint outside the AI blueprint
                         client.post("/api/analyze", json={"text": "I goes home."}, headers=auth)):
            assert response.status_code == 200, response.request.path
            assert "X-RateLimit-Retry-After" not in response.headers
        assert client.get("/no/such/route").status_code == 404
        assert client.delete("/health").status_code == 405
    assert seen == []
    # The AI limit's own headers are still there.
    assert client.post("/api/analyze", json={"text": "I goes home."}, headers=auth).headers["X-RateLimit-Limit"]


def test_other_routes_keep_flask_limiters_limits_and_headers(make_app, admin):
    app = make_app(RATE_LIMIT_DEFAULT="2/minute")
    seen = identified_requests(app)
    client = app.test_client()
    first = client.get("/api/cache/stats", headers=admin)
    assert_ok(first)
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == ("2", "1")
    assert_ok(client.get("/api/cache/stats", headers=admin))
    assert_error(client.get("/api/cache/stats", headers=admin), 429, "RATE_LIMITED")
    assert seen == ["cache_admin.stats"] * 3


def test_a_route_added_after_the_limiter_keeps_flask_limiters_own_resolution(make_app):
    app = make_app(RATE_LIMIT_DEFAULT="2/minute")
    app.add_url_rule("/late", "late", lambda: {"status": "ok"})
    client = app.test_client()
    assert [client.get("/late").status_code for _ in range(3)] == [200, 200, 429]
