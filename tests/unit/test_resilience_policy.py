"""Retries, deadlines, bulkheads and the breaker, through the endpoints against the fake Gemini."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.envelope import assert_error, assert_ok


def analyze(client, auth, text="Hello there."):
    return client.post("/api/analyze", json={"text": text}, headers=auth)


def test_retry_after_is_honoured(client, auth, fake_gemini):
    fake_gemini.configure(fail_next=1, error="429", retry_after=2)
    started = time.monotonic()
    assert_ok(analyze(client, auth))
    assert time.monotonic() - started >= 2.0, "retried before the provider's Retry-After"
    assert fake_gemini.calls == 2


def test_transient_errors_are_retried_up_to_the_limit(make_app, auth, fake_gemini):
    client = make_app(RETRY_MAX_ATTEMPTS=4).test_client()
    fake_gemini.configure(error="503")
    assert_error(analyze(client, auth), 502, "PROVIDER_ERROR")
    assert fake_gemini.calls == 4


def test_a_provider_400_is_not_retried_and_does_not_open_the_breaker(make_app, auth, admin, fake_gemini):
    client = make_app(CIRCUIT_BREAKER_FAILURE_THRESHOLD=3).test_client()
    fake_gemini.configure(error="400")
    for i in range(6):
        assert_error(analyze(client, auth, f"text {i}"), 502, "PROVIDER_ERROR")
    assert fake_gemini.calls == 6
    state = assert_ok(client.get("/api/circuit-breaker/state", headers=admin))["breakers"]["gemini"]
    assert state["state"] == "closed"


def test_the_deadline_holds_against_a_hanging_provider(make_app, auth, fake_gemini):
    client = make_app(REQUEST_DEADLINE_SECONDS=2, GEMINI_TIMEOUT_SECONDS=30).test_client()
    fake_gemini.configure(error="hang")
    started = time.monotonic()
    assert_error(analyze(client, auth), 504, "PROVIDER_TIMEOUT")
    assert time.monotonic() - started < 4.0


def test_breaker_opens_after_the_threshold_and_stops_calling(make_app, auth, admin, fake_gemini):
    client = make_app(CIRCUIT_BREAKER_FAILURE_THRESHOLD=3, RETRY_MAX_ATTEMPTS=1).test_client()
    fake_gemini.configure(error="500")
    for i in range(3):
        assert_error(analyze(client, auth, f"storm {i}"), 502, "PROVIDER_ERROR")
    assert fake_gemini.calls == 3
    for i in range(20):
        response = analyze(client, auth, f"while open {i}")
        assert_error(response, 503, "PROVIDER_UNAVAILABLE")
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert fake_gemini.calls == 3, "an open breaker let a call through"
    health = client.get("/api/health").get_json()["data"]
    assert health["components"]["providers"]["gemini"]["breaker"] == "open"
    assert "gemini circuit breaker is open" in health["reasons"]


def test_open_breaker_serves_stale_when_held(make_app, auth, fake_gemini):
    client = make_app(CIRCUIT_BREAKER_FAILURE_THRESHOLD=1, RETRY_MAX_ATTEMPTS=1, CACHE_TTL_SECONDS=1).test_client()
    assert_ok(analyze(client, auth, "kept"))
    time.sleep(1.1)
    fake_gemini.configure(error="500")
    assert_error(analyze(client, auth, "opens it"), 502, "PROVIDER_ERROR")
    response = analyze(client, auth, "kept")
    assert response.status_code == 200 and response.headers["X-Cache"] == "STALE"


def test_half_open_trial_success_closes(make_app, auth, admin, fake_gemini):
    client = make_app(CIRCUIT_BREAKER_FAILURE_THRESHOLD=2, CIRCUIT_BREAKER_RECOVERY_TIMEOUT=1,
                      RETRY_MAX_ATTEMPTS=1).test_client()
    fake_gemini.configure(error="500")
    for i in range(2):
        analyze(client, auth, f"fail {i}")
    fake_gemini.configure(error=None)
    time.sleep(1.1)
    assert_ok(analyze(client, auth, "trial"))
    state = assert_ok(client.get("/api/circuit-breaker/state", headers=admin))["breakers"]["gemini"]
    assert state["state"] == "closed"
    assert_ok(analyze(client, auth, "traffic flows"))


def test_admin_force_open_and_reset(client, auth, admin, fake_gemini):
    opened = assert_ok(client.post("/api/circuit-breaker/open", json={"name": "gemini"}, headers=admin))
    assert opened["breakers"]["gemini"]["state"] == "forced_open"
    assert_error(analyze(client, auth), 503, "PROVIDER_UNAVAILABLE")
    assert fake_gemini.calls == 0
    reset = assert_ok(client.post("/api/circuit-breaker/reset", json={"name": "gemini"}, headers=admin))
    assert reset["breakers"]["gemini"]["state"] == "closed"
    assert_ok(analyze(client, auth))


def test_breaker_admin_validates_names_and_needs_the_admin_key(client, auth, admin):
    assert_error(client.post("/api/circuit-breaker/open", json={"name": "nope"}, headers=admin), 422,
                 "VALIDATION_ERROR")
    assert_error(client.post("/api/circuit-breaker/open", json={}, headers=admin), 422, "VALIDATION_ERROR")
    assert_error(client.get("/api/circuit-breaker/state", headers=auth), 401, "UNAUTHORIZED")


def test_cli_breaker_reset(app, admin):
    app.extensions["backend"].breakers["gemini"].force_open()
    result = app.test_cli_runner().invoke(args=["breaker", "reset", "gemini"])
    assert result.exit_code == 0 and "gemini: closed" in result.output


@pytest.mark.parametrize("identical, upstream", [(False, 5), (True, 1)], ids=["distinct", "identical"])
def test_bulkhead_rejects_exactly_the_excess_at_once(make_app, auth, fake_gemini, identical, upstream):
    """Distinct calls beyond the bulkhead get fast 503s; so do identical ones, whose followers hold slots as their
    leader does (they once went around it and took every thread of a worker), while still sharing one call."""
    client_app = make_app(GEMINI_MAX_CONCURRENCY=5)
    fake_gemini.configure(latency_ms=1500)

    def call(i):
        started = time.monotonic()
        # Subtopics: no local answer stands in for a refused one (an analysis would degrade instead).
        topic = "One topic for all" if identical else f"Distinct topic {i}"
        response = client_app.test_client().post("/api/create_subtopics", json={"topic": topic}, headers=auth)
        return response, time.monotonic() - started

    with ThreadPoolExecutor(15) as pool:
        results = list(pool.map(call, range(15)))
    rejected = [(r, t) for r, t in results if r.status_code == 503]
    assert len(rejected) == 10 and sum(r.status_code == 200 for r, _ in results) == 5
    for response, seconds in rejected:
        assert_error(response, 503, "PROVIDER_UNAVAILABLE")
        assert seconds < 1.0, "a rejected call waited for a slot"
    assert fake_gemini.calls == upstream


@pytest.mark.parametrize("fault", ["hang", "reset", "503"])
def test_timeouts_resets_and_5xx_all_open_the_breaker(make_app, auth, admin, fake_gemini, fault):
    client = make_app(CIRCUIT_BREAKER_FAILURE_THRESHOLD=2, RETRY_MAX_ATTEMPTS=1, GEMINI_TIMEOUT_SECONDS=1).test_client()
    fake_gemini.configure(error=fault)
    for i in range(2):
        assert analyze(client, auth, f"{fault} {i}").status_code in (502, 504)
    calls = fake_gemini.calls
    assert_error(analyze(client, auth, f"{fault} after"), 503, "PROVIDER_UNAVAILABLE")
    # Refused by the open breaker without asking upstream (a hanging provider would have been asked, and waited for,
    # had the breaker let the call through). No wall-clock bound: the shared CI host is too noisy for one.
    assert fake_gemini.calls == calls
    state = assert_ok(client.get("/api/circuit-breaker/state", headers=admin))["breakers"]["gemini"]
    assert state["state"] == "open" and state["consecutive_failures"] == 2
