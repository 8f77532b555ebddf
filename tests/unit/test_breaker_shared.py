"""One breaker shared by processes: its state in Redis, the local hint of a refusal, Redis's clock rather than each
worker's, and operator changes refused while Redis is down."""
from __future__ import annotations

import time

import pytest

from backend.errors import ProviderUnavailable
from backend.resilience.breaker import CircuitBreaker
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.store import MemoryStore, StoreUnavailable
from backend.resilience.store_disk import DiskStore
from backend.resilience.store_redis import RedisStore
from tests.redis_helpers import MAIN_REDIS_URL, RedisServer, purge, unique_prefix
from tests.unit.breaker_helpers import breaker_factory, fail  # noqa: F401  (the make_breaker fixture)


def test_two_processes_share_one_breaker_through_redis():
    prefix = unique_prefix("shared-breaker")
    config = BreakerConfig(failure_threshold=2, recovery_timeout=30)
    one = CircuitBreaker("azure_speech", config, local=MemoryStore(), redis=RedisStore(MAIN_REDIS_URL, prefix=prefix))
    two = CircuitBreaker("azure_speech", config, local=MemoryStore(), redis=RedisStore(MAIN_REDIS_URL, prefix=prefix))
    fail(one, 1)
    fail(two, 1)
    assert one.state()["state"] == two.state()["state"] == "open"
    two.reset()
    assert one.acquire().trial is False
    purge(prefix)


def test_a_refusal_is_believed_briefly_without_reading_shared_state(make_breaker):
    breaker = make_breaker(failure_threshold=1, recovery_timeout=30)
    fail(breaker)
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()
    reads = []
    original = breaker._run
    breaker._run = lambda *args, **kwargs: reads.append(args) or original(*args, **kwargs)
    with pytest.raises(ProviderUnavailable) as refused:
        breaker.refuse_if_known_open()
    assert reads == [] and 25 <= refused.value.retry_after <= 30
    time.sleep(breaker.open_hint_seconds + 0.05)
    breaker.refuse_if_known_open()  # the hint is stale: the caller goes on to acquire(), which reads the state


def test_no_process_believes_an_old_refusal_once_a_reset_returns(make_breaker):
    mine, other = make_breaker(failure_threshold=1, recovery_timeout=30), None
    fail(mine)
    with pytest.raises(ProviderUnavailable):
        mine.acquire()
    other = make_breaker(failure_threshold=1, recovery_timeout=30)  # same shared state in the redis case
    other._open_hint = mine._open_hint  # it saw the same refusal just now
    started = time.monotonic()
    mine.reset()
    assert time.monotonic() - started >= mine.open_hint_seconds
    mine.refuse_if_known_open()
    other.refuse_if_known_open()  # its hint has expired by the time the reset returned


def test_redis_times_the_breaker_whatever_each_workers_clock_says():
    """Workers an hour apart share one window and one recovery deadline, both on Redis's clock."""
    prefix = unique_prefix("breaker-clock")
    config = BreakerConfig(failure_threshold=100, failure_rate=0.5, minimum_calls=4, recovery_timeout=30)

    def worker(skew: float) -> CircuitBreaker:
        return CircuitBreaker("gemini", config, local=MemoryStore(), redis=RedisStore(MAIN_REDIS_URL, prefix=prefix),
                              clock=lambda: time.time() + skew)

    behind, ahead = worker(-3600), worker(+3600)
    try:
        fail(behind, 2)
        fail(ahead, 2)  # with each worker's own clock, the other's buckets fall out of the window: 2 calls, not 4
        assert ahead.state()["state"] == behind.state()["state"] == "open"
        with pytest.raises(ProviderUnavailable) as refused:
            ahead.acquire()  # an hour ahead, its own clock would say the recovery time has long passed
        assert 25 <= refused.value.retry_after <= 30
        with pytest.raises(ProviderUnavailable) as refused:
            behind.acquire()  # an hour behind: its clock would make the wait an hour and a half
        assert 25 <= refused.value.retry_after <= 30
        with pytest.raises(ProviderUnavailable) as refused:
            behind.refuse_if_known_open()  # the remembered refusal runs on this process's monotonic time
        assert 25 <= refused.value.retry_after <= 30
    finally:
        purge(prefix)


def test_the_python_twin_uses_the_clock_it_is_given(tmp_path):
    now = [1_000_000.0]
    breaker = CircuitBreaker("gemini", BreakerConfig(failure_threshold=2, recovery_timeout=30),
                             local=DiskStore(tmp_path / "disk"), clock=lambda: now[0])
    fail(breaker, 2)
    assert breaker.state()["opened_at"] == 1_000_000.0
    now[0] += 31
    assert breaker.acquire().trial is True


def test_operator_changes_are_refused_while_redis_is_down_and_nothing_is_half_applied():
    with RedisServer() as server:
        local = MemoryStore()
        breaker = CircuitBreaker("gemini", BreakerConfig(failure_threshold=1, recovery_timeout=30), local=local,
                                 redis=RedisStore(server.url, prefix="b:", timeout=0.2, probe_interval=0.2))
        fail(breaker)
        server.stop()
        with pytest.raises(StoreUnavailable) as refused:
            breaker.force_open()
        assert refused.value.store == "redis"
        with pytest.raises(StoreUnavailable):
            breaker.reset()
        assert local.get(breaker.key) is None  # neither change went to the local fallback
        assert breaker.acquire().trial is False  # the outage itself still fails open onto local state
        server.start()
        time.sleep(0.25)
        breaker.force_open()
        with pytest.raises(ProviderUnavailable):
            breaker.acquire()
