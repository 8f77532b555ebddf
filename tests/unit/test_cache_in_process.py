"""The policy's cache in one process: hits, namespaces, clear, stale-if-error, partial TTL, admin endpoints."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.envelope import assert_error, assert_ok

TEXT = {"text": "She go to school yesterday."}
TOPIC = {"topic": "Cinema"}


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_second_identical_request_is_a_hit(make_app, auth, fake_gemini, mode):
    client = make_app(CACHE_MODE=mode).test_client()
    first = client.post("/api/analyze", json=TEXT, headers=auth)
    second = client.post("/api/analyze", json=TEXT, headers=auth)
    assert first.headers["X-Cache"] == "MISS" and first.get_json()["meta"]["cached"] is False
    assert second.headers["X-Cache"] == "HIT" and second.get_json()["meta"]["cached"] is True
    assert assert_ok(second) == assert_ok(first)
    assert fake_gemini.calls == 1


def test_different_requests_are_different_entries(client, auth, fake_gemini):
    client.post("/api/analyze", json=TEXT, headers=auth)
    client.post("/api/analyze", json={**TEXT, "level": "B2"}, headers=auth)
    assert fake_gemini.calls == 2


def test_clear_by_namespace_and_all(client, auth, admin, fake_gemini):
    client.post("/api/analyze", json=TEXT, headers=auth)
    client.post("/api/create_subtopics", json={"topic": "Art"}, headers=auth)
    assert_ok(client.post("/api/cache/clear", json={"namespace": "analyze"}, headers=admin))
    assert client.post("/api/analyze", json=TEXT, headers=auth).headers["X-Cache"] == "MISS"
    assert client.post("/api/create_subtopics", json={"topic": "Art"}, headers=auth).headers["X-Cache"] == "HIT"
    assert_ok(client.post("/api/cache/clear", headers=admin))
    assert client.post("/api/create_subtopics", json={"topic": "Art"}, headers=auth).headers["X-Cache"] == "MISS"
    assert fake_gemini.calls == 4


def test_an_answer_computed_across_a_clear_is_not_served_after_it(client, auth, admin, fake_gemini):
    """The generation is read before the upstream call: a clear during the call makes its answer a miss."""
    fake_gemini.configure(latency_ms=400)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.post, "/api/create_subtopics", json={"topic": "Art"}, headers=auth)
        time.sleep(0.15)
        assert_ok(client.post("/api/cache/clear", headers=admin))
        assert pending.result().headers["X-Cache"] == "MISS"
    fake_gemini.configure(latency_ms=0)
    assert client.post("/api/create_subtopics", json={"topic": "Art"}, headers=auth).headers["X-Cache"] == "MISS"
    assert fake_gemini.calls == 2


def test_ttl_expiry_then_stale_if_error(make_app, auth, fake_gemini):
    client = make_app(CACHE_TTL_SECONDS=1, CACHE_STALE_GRACE_SECONDS=60).test_client()
    fresh = assert_ok(client.post("/api/analyze", json=TEXT, headers=auth))
    time.sleep(1.1)
    fake_gemini.configure(error="500")
    response = client.post("/api/analyze", json=TEXT, headers=auth)
    assert response.headers["X-Cache"] == "STALE" and assert_ok(response) == fresh
    fake_gemini.configure(error=None)
    refreshed = client.post("/api/analyze", json=TEXT, headers=auth)
    assert refreshed.headers["X-Cache"] == "MISS"
    assert fake_gemini.calls == 1 + 3 + 1  # the failing request made RETRY_MAX_ATTEMPTS attempts


# Subtopics have no local answer, so a provider failure reaches the caller (an analysis would degrade instead).
def test_expired_past_grace_is_an_error(make_app, auth, fake_gemini):
    client = make_app(CACHE_TTL_SECONDS=1, CACHE_STALE_GRACE_SECONDS=0).test_client()
    client.post("/api/create_subtopics", json=TOPIC, headers=auth)
    time.sleep(1.1)
    fake_gemini.configure(error="500")
    assert_error(client.post("/api/create_subtopics", json=TOPIC, headers=auth), 502, "PROVIDER_ERROR")


def test_failures_are_not_cached(make_app, auth, fake_gemini):
    client = make_app(RETRY_MAX_ATTEMPTS=1).test_client()
    fake_gemini.configure(fail_next=1, error="500")
    assert_error(client.post("/api/create_subtopics", json=TOPIC, headers=auth), 502, "PROVIDER_ERROR")
    assert client.post("/api/create_subtopics", json=TOPIC, headers=auth).headers["X-Cache"] == "MISS"


def test_partial_answers_get_the_short_ttl(make_app, auth, fake_gemini):
    client = make_app(CACHE_PARTIAL_TTL_SECONDS=1).test_client()
    fake_gemini.configure(malformed="markdown")
    data = assert_ok(client.post("/api/create_subtopics", json={"topic": "Film"}, headers=auth))
    assert data["partial"] is True
    assert client.post("/api/create_subtopics", json={"topic": "Film"}, headers=auth).headers["X-Cache"] == "HIT"
    time.sleep(1.1)
    fake_gemini.configure(malformed=None)
    assert client.post("/api/create_subtopics", json={"topic": "Film"}, headers=auth).headers["X-Cache"] == "MISS"


def test_stats_count_hits_and_misses_per_namespace_and_tier(make_app, auth, admin):
    client = make_app(CACHE_MODE="disk").test_client()

    def memory_counts():
        stats = assert_ok(client.get("/api/cache/stats", headers=admin))
        slot = stats["namespaces"].get("explanation", {}).get("memory", {"hit": 0, "miss": 0})
        return stats, slot["hit"], slot["miss"]

    _, hits_before, misses_before = memory_counts()  # counters are process-wide: compare deltas
    body = {"topic": "Stats", "subtopic": "Counting"}
    client.post("/api/explanation", json=body, headers=auth)
    client.post("/api/explanation", json=body, headers=auth)
    stats, hits, misses = memory_counts()
    assert stats["mode"] == "disk" and set(stats["tiers"]) == {"memory", "disk"}
    assert (hits - hits_before, misses - misses_before) == (1, 1)
    assert 0 < stats["namespaces"]["explanation"]["memory"]["hit_rate"] <= 1
    assert stats["tiers"]["memory"]["entries"] == 1
    assert assert_ok(client.get("/health/cache"))["mode"] == "disk"


def test_cache_admin_needs_the_admin_key(client, auth):
    assert_error(client.get("/api/cache/stats", headers=auth), 401, "UNAUTHORIZED")
    assert_error(client.post("/api/cache/clear", headers={"X-Admin-Key": "nope"}), 401, "UNAUTHORIZED")


def test_cache_admin_is_forbidden_without_an_admin_key_configured(make_app, admin):
    client = make_app(ADMIN_API_KEY="").test_client()
    assert_error(client.get("/api/cache/stats", headers=admin), 403, "FORBIDDEN")


def test_cli_cache_clear(make_app, auth, fake_gemini):
    app = make_app(CACHE_MODE="disk")
    client = app.test_client()
    client.post("/api/analyze", json=TEXT, headers=auth)
    result = app.test_cli_runner().invoke(args=["cache", "clear"])
    assert result.exit_code == 0 and "cleared *" in result.output
    assert client.post("/api/analyze", json=TEXT, headers=auth).headers["X-Cache"] == "MISS"


def test_disk_directory_is_private(make_app, provider_config):
    import os
    import stat
    from pathlib import Path

    make_app(CACHE_MODE="disk")
    mode = stat.S_IMODE(os.stat(Path(provider_config["CACHE_DIR"])).st_mode)
    assert mode == 0o700
