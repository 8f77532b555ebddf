"""A Redis short of memory: cache entries stop before control state is refused, and one refusal is not an outage."""
from __future__ import annotations

import time

import pytest
import redis

from backend.resilience.breaker import CircuitBreaker
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.cache import TieredCache
from backend.resilience.cache_tiers import MemoryTier, StoreTier
from backend.resilience.store import FailoverStore, MemoryStore, StoreUnavailable
from backend.resilience.store_redis import RedisStore
from tests.redis_helpers import RedisServer, spare_port


@pytest.fixture
def server():
    with RedisServer() as running:
        yield running


def test_cache_entries_leave_redis_room_for_control_state(server):
    raw = redis.Redis.from_url(server.url)
    raw.config_set("maxmemory-policy", "noeviction")
    raw.config_set("maxmemory", raw.info("memory")["used_memory"] + 3 * 1024 * 1024)  # 3 MiB to spare
    store = RedisStore(server.url, prefix="", memory_check_interval=0)
    control = FailoverStore(store, MemoryStore())
    cache = TieredCache("redis_only", [MemoryTier(64 << 20), StoreTier(store)], control, default_ttl=3600,
                        shared=store)
    value = "x" * 20_000
    for i in range(400):  # 8 MB of answers: one client's budget, scaled down
        cache.store(f"analyze:v1:m:{i}", value)

    written = sum(1 for _ in raw.scan_iter(match="cache:*", count=1000))
    assert 0 < written < 400  # Redis took entries while it had room, then no more
    assert store.available()  # and was never taken for down
    assert all(cache.lookup(f"analyze:v1:m:{i}") is not None for i in range(400))  # the rest answer from memory
    # Control state still lands in Redis, where every worker and instance reads it.
    assert control.incr("authfail:10.0.0.1", ttl=60) == 1 and raw.get("authfail:10.0.0.1") == b"1"
    cache.clear("analyze")
    assert raw.get("gen:analyze") == b"1"
    breaker = CircuitBreaker("gemini", BreakerConfig(failure_threshold=1, recovery_timeout=30), local=MemoryStore(),
                             redis=store)
    breaker.record(breaker.acquire(), failed=True)
    assert b'"open"' in raw.get("breaker:gemini")


def test_a_write_refused_for_memory_refuses_that_write_only(server):
    store = RedisStore(server.url, prefix="p:")
    store.set("k", "shared")
    redis.Redis.from_url(server.url).config_set("maxmemory", 1)  # noeviction: every write is refused (OOM)
    with pytest.raises(StoreUnavailable) as refused:
        store.set("other", "x")
    assert refused.value.store == "redis"
    assert store.available() and store.get("k") == "shared"  # reads still go to Redis
    assert FailoverStore(store, MemoryStore()).get("k") == "shared"
    assert store.has_room() is False


def test_a_redis_that_turned_read_only_is_taken_for_down_until_it_takes_writes(server):
    raw = redis.Redis.from_url(server.url)
    store = RedisStore(server.url, prefix="p:", probe_interval=0.2)
    raw.replicaof("127.0.0.1", spare_port())  # a replica of a master that is gone: READONLY for every write
    with pytest.raises(StoreUnavailable):
        store.set("k", "v")
    assert store.available() is False  # every worker moves to its fallback together, not write by write
    raw.replicaof("NO", "ONE")
    time.sleep(0.25)
    store.set("k", "v")
    assert store.available() and store.get("k") == "v"
