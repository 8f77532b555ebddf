"""The cache through a Redis outage in one process: entries keep hitting, a clear is refused, not half-done."""
from __future__ import annotations

import time

import pytest

from tests.envelope import assert_error, assert_ok
from tests.redis_helpers import RedisServer


@pytest.fixture
def redis_server():
    with RedisServer() as server:
        yield server


def test_entries_written_after_a_clear_still_hit_while_redis_is_down(make_app, auth, admin, fake_gemini,
                                                                        redis_server):
    client = make_app(CACHE_MODE="redis", REDIS_URL=redis_server.url).test_client()
    assert_ok(client.post("/api/cache/clear", headers=admin))  # generation 1 in Redis, 0 on the local fallback
    body = {"topic": "Outage", "count": 3}
    assert client.post("/api/create_subtopics", json=body, headers=auth).headers["X-Cache"] == "MISS"
    redis_server.stop()
    for _ in range(3):
        response = client.post("/api/create_subtopics", json=body, headers=auth)
        assert response.status_code == 200 and response.headers["X-Cache"] == "HIT"
    assert fake_gemini.calls == 1


def test_a_clear_while_redis_is_down_is_refused(make_app, admin, redis_server):
    client = make_app(CACHE_MODE="redis", REDIS_URL=redis_server.url).test_client()
    redis_server.stop()
    response = client.post("/api/cache/clear", headers=admin)
    error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert "not cleared" in error["message"]


def test_a_redis_that_refuses_writes_is_a_fallback_not_a_500(make_app, auth, fake_gemini, redis_server):
    import redis

    client = make_app(CACHE_MODE="redis", REDIS_URL=redis_server.url).test_client()
    redis.Redis.from_url(redis_server.url).config_set("maxmemory", 1)  # every write: OOM (noeviction)
    for i in range(3):
        assert_ok(client.post("/api/create_subtopics", json={"topic": f"Full {i}"}, headers=auth))


def test_a_fresh_copy_in_a_slower_tier_beats_a_stale_one_in_memory(tmp_path):
    from backend.resilience.cache import TieredCache
    from backend.resilience.cache_tiers import MemoryTier, StoreTier
    from backend.resilience.store import MemoryStore
    from backend.resilience.store_disk import DiskStore

    control, shared = MemoryStore(), DiskStore(tmp_path / "shared")
    memory = MemoryTier(1 << 20)
    mine = TieredCache("redis", [memory, StoreTier(shared)], control, default_ttl=60, stale_grace=600)
    other = TieredCache("redis", [MemoryTier(1 << 20), StoreTier(shared)], control, default_ttl=60, stale_grace=600)
    mine.store("analyze:v2:m:k", "old", ttl=0.01)
    time.sleep(0.02)
    other.store("analyze:v2:m:k", "new")  # another instance refreshed it
    entry = mine.lookup("analyze:v2:m:k")
    assert (entry.value, entry.fresh, entry.tier) == ("new", True, "disk")
    assert mine.lookup("analyze:v2:m:k").tier == "memory"  # and it was promoted over the stale copy
