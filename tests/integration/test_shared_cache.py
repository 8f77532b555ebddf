"""The cache shared by gunicorn workers and instances: hits everywhere, one upstream call per flight, clears."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import ADMIN_KEY, CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.integration.servers import Gunicorn, access_lines
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix

pytestmark = pytest.mark.gunicorn
AUTH = {"X-API-Key": CLIENT_KEY}
ADMIN = {"X-Admin-Key": ADMIN_KEY}


@pytest.fixture
def env_for(fake_gemini, tmp_path):
    """Environment for a gunicorn of a given cache mode; Redis keys under a prefix of this test's own."""
    prefix = unique_prefix("shared")

    def build(mode: str) -> dict:
        return {"APP_ENV": "testing", "API_KEYS": CLIENT_KEY, "ADMIN_API_KEY": ADMIN_KEY,
                "GEMINI_API_KEY": FAKE_PROVIDER_KEY, "GEMINI_BASE_URL": fake_gemini.base_url,
                "CACHE_MODE": mode, "CACHE_DIR": str(tmp_path / "cache"), "REDIS_URL": MAIN_REDIS_URL,
                "REDIS_KEY_PREFIX": prefix, "RATE_LIMIT_AI": "100000/minute", "RATE_LIMIT_AI_PER_KEY": "100000/minute",
                # Followers of a flight hold bulkhead slots too; wider than the threads, so that these tests see
                # only sharing, never a bulkhead refusal.
                "GEMINI_MAX_CONCURRENCY": "64"}

    yield build
    purge(prefix)


def post(url: str, path: str, body: dict, headers: dict | None = None) -> requests.Response:
    return requests.post(f"{url}{path}", json=body, headers={**AUTH, **(headers or {})}, timeout=30)


def hits_until_every_worker_served(server: Gunicorn, body: dict, max_requests: int = 400) -> set[int]:
    """Send concurrent identical requests until every worker has answered one; all must be HITs."""
    pids: set[int] = set()
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        while len(pids) < server.workers and sent < max_requests:
            responses = list(pool.map(lambda _: post(server.url, "/api/analyze", body), range(16)))
            sent += 16
            assert all(r.status_code == 200 for r in responses)
            assert {r.headers["X-Cache"] for r in responses} == {"HIT"}
            pids = {line["process"] for line in access_lines(server.log_path) if line["cache"] == "HIT"}
    return pids


@pytest.mark.parametrize("mode", ["disk", "redis", "redis_only"])
def test_a_result_cached_by_one_worker_is_a_hit_on_every_worker(env_for, fake_gemini, tmp_path, mode):
    body = {"text": f"Cached once in {mode} mode."}
    with Gunicorn(env_for(mode), workers=3, threads=4, log_path=tmp_path / "g.log") as server:
        assert post(server.url, "/api/analyze", body).headers["X-Cache"] == "MISS"
        pids = hits_until_every_worker_served(server, body)
    assert len(pids) == 3, f"only workers {pids} served hits"
    assert fake_gemini.calls == 1


@pytest.mark.parametrize("mode", ["redis", "redis_only"])
def test_a_second_instance_sharing_redis_hits(env_for, fake_gemini, tmp_path, mode):
    body = {"text": f"Shared between instances in {mode} mode."}
    first_env = env_for(mode)
    second_env = {**first_env, "CACHE_DIR": str(tmp_path / "other-host")}  # another host: its own disk
    with Gunicorn(first_env, workers=2, threads=4) as first, Gunicorn(second_env, workers=2, threads=4) as second:
        assert post(first.url, "/api/analyze", body).headers["X-Cache"] == "MISS"
        assert post(second.url, "/api/analyze", body).headers["X-Cache"] == "HIT"
    assert fake_gemini.calls == 1


@pytest.mark.parametrize("mode", ["disk", "redis"])
def test_fifty_concurrent_identical_requests_make_one_upstream_call(env_for, fake_gemini, tmp_path, mode):
    fake_gemini.configure(latency_ms=700)
    body = {"topic": f"Fan-in {mode}", "count": 4}
    with Gunicorn(env_for(mode), workers=4, threads=16, log_path=tmp_path / "g.log") as server:
        with ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(lambda _: post(server.url, "/api/create_subtopics", body), range(50)))
        lines = access_lines(server.log_path)
    assert [r.status_code for r in responses] == [200] * 50
    assert len({json.dumps(r.json()["data"], sort_keys=True) for r in responses}) == 1
    assert fake_gemini.calls == 1
    assert sum(r.headers["X-Cache"] == "MISS" for r in responses) == 1
    assert len({line["process"] for line in lines if line["route"] == "/api/create_subtopics"}) > 1


@pytest.mark.parametrize("mode", ["disk", "redis"])
def test_clear_through_one_worker_invalidates_every_worker(env_for, fake_gemini, tmp_path, mode):
    body = {"topic": f"Clearing {mode}", "count": 3}
    before = {"topic": body["topic"], "subtopics": [{"title": f"Before {i}", "description": "old"} for i in range(3)]}
    after = {"topic": body["topic"], "subtopics": [{"title": f"After {i}", "description": "new"} for i in range(3)]}
    fake_gemini.script([{"text": json.dumps(before)}, {"text": json.dumps(after)}])
    with Gunicorn(env_for(mode), workers=3, threads=4, log_path=tmp_path / "g.log") as server:
        post(server.url, "/api/create_subtopics", body)
        with ThreadPoolExecutor(8) as pool:  # every worker now holds the entry in its own memory tier
            for _ in range(6):
                list(pool.map(lambda _: post(server.url, "/api/create_subtopics", body), range(16)))
        warmed = {line["process"] for line in access_lines(server.log_path) if line["cache"] == "HIT"}
        cleared = requests.post(f"{server.url}/api/cache/clear", headers=ADMIN, timeout=10)
        assert cleared.status_code == 200
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda _: post(server.url, "/api/create_subtopics", body), range(48)))
    assert len(warmed) == 3
    titles = {r.json()["data"]["subtopics"][0]["title"] for r in responses}
    assert titles == {"After 0"}, "a worker served a pre-clear entry"
    assert fake_gemini.calls == 2
