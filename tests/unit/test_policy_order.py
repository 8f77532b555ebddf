"""The policy's own rules: a bulkhead refusal strands no trial, unexpected errors count, bad input does not."""
from __future__ import annotations

import time

import pytest

from backend.errors import ProviderUnavailable, ValidationFailed
from backend.resilience.breaker import CircuitBreaker
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.bulkhead import Bulkhead
from backend.resilience.policy import ProviderPolicy
from backend.resilience.store import MemoryStore


def make_policy(threshold: int = 1, recovery: float = 0.2, limit: int = 1):
    breaker = CircuitBreaker("gemini", BreakerConfig(failure_threshold=threshold, recovery_timeout=recovery),
                             local=MemoryStore())
    bulkhead = Bulkhead("gemini", limit)
    policy = ProviderPolicy("gemini", "analyze", deadline_seconds=5, breaker=breaker, bulkhead=bulkhead)
    return policy, breaker, bulkhead


def boom(_):
    raise KeyError("an adapter bug")


def test_a_bulkhead_refusal_leaves_the_trial_permit_to_someone_else():
    policy, breaker, bulkhead = make_policy()
    with pytest.raises(KeyError):
        policy.execute("analyze:v1:m:a", boom)  # an unexpected error is a failure: the breaker opens
    assert breaker.state()["state"] == "open"
    time.sleep(0.25)
    bulkhead.acquire()  # every slot busy with calls from before the breaker opened
    with pytest.raises(ProviderUnavailable):
        policy.execute("analyze:v1:m:b", lambda _: {"ok": True})
    bulkhead.release()
    assert policy.execute("analyze:v1:m:c", lambda _: {"ok": True}).value == {"ok": True}  # the trial is still free
    assert breaker.state()["state"] == "closed"


def test_a_callers_bad_input_does_not_open_the_breaker():
    policy, breaker, _ = make_policy()

    def refuse(_):
        raise ValidationFailed("too long", status=422)

    for key in ("a", "b", "c"):
        with pytest.raises(ValidationFailed):
            policy.execute(f"analyze:v1:m:{key}", refuse)
    assert breaker.state()["state"] == "closed"


def test_slowness_is_judged_on_the_answering_attempt():
    policy, breaker, _ = make_policy(threshold=1)
    breaker.slow_call_seconds = 0.05

    def slow(_):
        time.sleep(0.08)
        return {"ok": True}

    policy.execute("analyze:v1:m:slow", slow)
    assert breaker.state()["state"] == "open"  # a slow success counted as a failure in the closed state


def test_while_known_open_no_flight_lock_is_taken_and_stale_still_answers():
    from backend.resilience.cache import TieredCache
    from backend.resilience.cache_tiers import MemoryTier
    from backend.resilience.singleflight import SingleFlight

    store = MemoryStore()
    locks = []
    original_add = store.add
    store.add = lambda *args: locks.append(args[0]) or original_add(*args)  # type: ignore[method-assign]
    cache = TieredCache("disk", [MemoryTier(1 << 20)], MemoryStore(), default_ttl=0.05, stale_grace=60)
    breaker = CircuitBreaker("gemini", BreakerConfig(failure_threshold=1, recovery_timeout=30), local=MemoryStore())
    policy = ProviderPolicy("gemini", "analyze", deadline_seconds=5, cache=cache, flights=SingleFlight(store),
                            breaker=breaker)
    assert policy.execute("analyze:v1:m:kept", lambda _: {"v": 1}).cache == "MISS"
    time.sleep(0.06)  # the entry is stale now
    with pytest.raises(KeyError):
        policy.execute("analyze:v1:m:a", boom)  # opens the breaker
    with pytest.raises(ProviderUnavailable):
        policy.execute("analyze:v1:m:b", lambda _: {"ok": True})  # refused by acquire(): this process now knows
    locks.clear()
    with pytest.raises(ProviderUnavailable):
        policy.execute("analyze:v1:m:c", lambda _: {"ok": True})
    stale = policy.execute("analyze:v1:m:kept", lambda _: {"v": 2})
    assert locks == [] and (stale.cache, stale.value) == ("STALE", {"v": 1})
