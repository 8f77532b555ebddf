"""Shared by the breaker tests: a breaker on each store (memory, disk, Redis), and a helper to fail calls."""
from __future__ import annotations

import pytest

from backend.resilience.breaker import CircuitBreaker
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.store import MemoryStore
from backend.resilience.store_disk import DiskStore
from backend.resilience.store_redis import RedisStore
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix


@pytest.fixture(name="make_breaker", params=["memory", "disk", "redis"])
def breaker_factory(request, tmp_path):
    """A function building breakers on this parameter's store, cleaned up after the test."""
    made = []

    def build(slow: float = 5.0, **config):
        local = DiskStore(tmp_path / "disk") if request.param == "disk" else MemoryStore()
        redis = RedisStore(MAIN_REDIS_URL, prefix=prefix) if request.param == "redis" else None
        defaults = dict(failure_threshold=3, minimum_calls=100, recovery_timeout=0.5, half_open_calls=1)
        breaker = CircuitBreaker("gemini", BreakerConfig(**{**defaults, **config}), local=local, redis=redis,
                                 slow_call_seconds=slow)
        made.append(breaker)
        return breaker

    prefix = unique_prefix("breaker")
    yield build
    purge(prefix)


def fail(breaker, times=1):
    for _ in range(times):
        breaker.record(breaker.acquire(), failed=True)
