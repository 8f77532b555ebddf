"""The breaker's semantics, identical on Redis (Lua) and on the local stores (Python)."""
from __future__ import annotations

import time

import pytest

from backend.errors import ProviderUnavailable
from backend.resilience.breaker import CircuitBreaker
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.store import MemoryStore
from backend.resilience.store_disk import DiskStore
from backend.resilience.store_redis import RedisStore
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix


@pytest.fixture(params=["memory", "disk", "redis"])
def make_breaker(request, tmp_path):
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


def test_opens_after_consecutive_failures_and_rejects_with_retry_after(make_breaker):
    breaker = make_breaker()
    fail(breaker, 2)
    breaker.record(breaker.acquire(), failed=False)  # a success resets the run
    fail(breaker, 2)
    assert breaker.state()["state"] == "closed"
    fail(breaker)
    state = breaker.state()
    assert state["state"] == "open" and state["opened_at"] and state["next_probe_at"] > state["opened_at"]
    with pytest.raises(ProviderUnavailable) as refused:
        breaker.acquire()
    assert 0 < refused.value.retry_after <= 1.0


def test_opens_on_failure_rate_over_the_window(make_breaker):
    breaker = make_breaker(failure_threshold=100, minimum_calls=10, failure_rate=0.5)
    for i in range(9):
        breaker.record(breaker.acquire(), failed=i % 2 == 0)  # 5 of 9 failed, but fewer than 10 calls
    assert breaker.state()["state"] == "closed"
    breaker.record(breaker.acquire(), failed=False)  # 10 calls, 5 failures: 50 %
    assert breaker.state()["state"] == "open"


def test_half_open_allows_bounded_trials_and_success_closes(make_breaker):
    breaker = make_breaker(half_open_calls=2)
    fail(breaker, 3)
    time.sleep(0.55)
    first, second = breaker.acquire(), breaker.acquire()
    assert first.trial and second.trial
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()  # permits are spent until the trials report
    breaker.record(first, failed=False)
    assert breaker.state()["state"] == "half_open"
    breaker.record(second, failed=False)
    assert breaker.state()["state"] == "closed"
    assert breaker.acquire().trial is False


def test_a_failed_trial_reopens(make_breaker):
    breaker = make_breaker()
    fail(breaker, 3)
    time.sleep(0.55)
    trial = breaker.acquire()
    breaker.record(trial, failed=True)
    assert breaker.state()["state"] == "open"
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()


def test_slow_successes_count_as_failures(make_breaker):
    breaker = make_breaker(slow=0.05)
    for _ in range(3):
        permit = breaker.acquire()
        time.sleep(0.06)
        breaker.record(permit, failed=False)
    assert breaker.state()["state"] == "open"


def test_forced_open_holds_until_reset(make_breaker):
    breaker = make_breaker()
    breaker.force_open()
    time.sleep(0.55)
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()
    assert breaker.state()["state"] == "forced_open"
    breaker.reset()
    assert breaker.state()["state"] == "closed" and breaker.acquire().trial is False


def test_calls_that_began_before_opening_do_not_move_it(make_breaker):
    breaker = make_breaker()
    early = breaker.acquire()
    fail(breaker, 3)
    breaker.record(early, failed=False)
    assert breaker.state()["state"] == "open"


def test_a_vanished_trial_permit_is_reissued(make_breaker):
    breaker = make_breaker(trial_timeout=0.3)
    fail(breaker, 3)
    time.sleep(0.55)
    breaker.acquire()  # this trial's worker dies and never reports
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()
    time.sleep(0.35)
    assert breaker.acquire().trial is True


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
