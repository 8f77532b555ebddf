"""The moving-window limiter: the Lua script on Redis and its Python twin on the local stores agree."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from backend.resilience.rate_window import MovingWindowLimiter, Quota
from backend.resilience.store import MemoryStore
from backend.resilience.store_disk import DiskStore
from backend.resilience.store_redis import RedisStore
from tests.redis_helpers import MAIN_REDIS_URL, RedisServer, purge, unique_prefix


@pytest.fixture(params=["memory", "disk", "redis"])
def limiter(request, tmp_path):
    if request.param == "memory":
        yield MovingWindowLimiter(MemoryStore())
    elif request.param == "disk":
        disk = DiskStore(tmp_path / "state", size_limit=None)
        yield MovingWindowLimiter(disk)
        disk.close()
    else:
        prefix = unique_prefix("window")
        redis_store = RedisStore(MAIN_REDIS_URL, prefix=prefix)
        yield MovingWindowLimiter(MemoryStore(), redis_store)
        purge(prefix)
        redis_store.close()


def test_allows_up_to_the_limit_then_refuses_with_when_to_retry(limiter):
    quota = Quota("caller", 3, 60)
    verdicts = [limiter.hit([quota]) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert all(v.limit == 3 for v in verdicts)
    first_reset = verdicts[0].reset_at
    assert 59 <= first_reset - verdicts[0].now <= 60.01
    assert 59 <= verdicts[3].retry_after <= 60
    assert abs(verdicts[3].reset_at - first_reset) < 0.01  # the oldest slot frees first


def test_the_window_moves(limiter):
    quota = Quota("caller", 2, 0.5)
    assert [limiter.hit([quota]).allowed for _ in range(3)] == [True, True, False]
    time.sleep(0.55)
    assert limiter.hit([quota]).allowed


def test_a_refusal_by_one_quota_takes_nothing_from_the_other(limiter):
    user, key = Quota("user", 10, 60), Quota("key", 2, 60)
    assert limiter.hit([user, key]).allowed
    assert limiter.hit([user, key]).allowed
    refused = limiter.hit([user, key])
    assert not refused.allowed and refused.limit == 2
    # The user's own quota lost no slot to the refused request: 8 remain after two allowed requests.
    assert limiter.hit([Quota("user", 10, 60)]).remaining == 7


def test_headers_report_the_first_quota_until_another_refuses(limiter):
    user, key = Quota("user", 100, 60), Quota("key", 2, 60)
    reported = [limiter.hit([user, key]), limiter.hit([user, key])]
    assert [(v.limit, v.remaining) for v in reported] == [(100, 99), (100, 98)]
    refused = limiter.hit([user, key])
    assert (refused.allowed, refused.limit, refused.remaining) == (False, 2, 0)


def test_expired_entries_do_not_count(limiter):
    quota = Quota("caller", 3, 0.3)
    limiter.hit([quota])
    limiter.hit([quota])
    time.sleep(0.35)
    assert limiter.hit([quota]).remaining == 2


@pytest.mark.parametrize("expired", [3, 200])  # popped from the tail; a backlog past 64, counted by a binary search
def test_the_remaining_count_is_exact_however_many_entries_expired(limiter, expired):
    stale = Quota("reported", 500, 0.4)
    for _ in range(expired):
        assert limiter.hit([Quota("other", 1000, 60), stale]).allowed  # written as the second quota: not trimmed
    time.sleep(0.45)
    live = [limiter.hit([stale]) for _ in range(5)]
    assert [v.remaining for v in live] == [499, 498, 497, 496, 495]
    assert all(v.allowed for v in live)


def test_exact_under_concurrency(limiter):
    quota = Quota("busy", 25, 60)
    with ThreadPoolExecutor(16) as pool:
        allowed = list(pool.map(lambda _: limiter.hit([quota]).allowed, range(80)))
    assert allowed.count(True) == 25


def _write_history(limiter: MovingWindowLimiter, key: str, stamps: list[float]) -> None:
    """Put a list of request times (newest first) under a quota's key, where the limiter in use keeps it."""
    if limiter.redis is not None:
        client = redis.Redis.from_url(MAIN_REDIS_URL)
        name = limiter.redis.k(f"ratelimit:{key}")
        client.delete(name)
        client.rpush(name, *[f"{s:.6f}" for s in stamps])
        client.expire(name, 3600)
        client.close()
    else:
        limiter.local.set(f"ratelimit:{key}", json.dumps(stamps), ttl=3600)


def _server_now(limiter: MovingWindowLimiter) -> float:
    """The clock the limiter counts by: Redis's own, or this host's."""
    if limiter.redis is not None:
        seconds, micros = limiter.redis.call(lambda: limiter.redis.client.time())
        return seconds + micros / 1e6
    return time.time()


def test_times_from_before_a_backward_clock_step_are_ignored(limiter):
    """Requests written while the clock ran an hour ahead (then stepped back) lock nobody out; the limit holds."""
    ahead = _server_now(limiter) + 3600
    _write_history(limiter, "stepped", [ahead, ahead - 1, ahead - 2])
    _write_history(limiter, "stepped-key", [ahead, ahead - 1, ahead - 2])
    quotas = [Quota("stepped", 3, 60), Quota("stepped-key", 5, 60)]
    verdicts = [limiter.hit(quotas) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts[:3]] == [2, 1, 0]
    assert 1 <= verdicts[3].retry_after <= 60  # not an hour


def test_a_mix_of_stepped_and_current_times_counts_only_the_current(limiter):
    now = _server_now(limiter)
    _write_history(limiter, "mixed", [now + 900, now + 899, now - 1, now - 2])
    assert [limiter.hit([Quota("mixed", 3, 60)]).allowed for _ in range(2)] == [True, False]


class SteppedClock:
    """A wall clock an operator (or NTP) can step."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("store", ["memory", "disk"])
def test_a_backward_step_of_the_local_clock_does_not_lock_callers_out(store, tmp_path):
    clock = SteppedClock()
    local = MemoryStore() if store == "memory" else DiskStore(tmp_path / "state", size_limit=None)
    limiter = MovingWindowLimiter(local, clock=clock)
    quota = Quota("caller", 3, 60)
    assert [limiter.hit([quota]).allowed for _ in range(4)] == [True, True, True, False]
    clock.now -= 600  # ten minutes back
    assert [limiter.hit([quota]).allowed for _ in range(4)] == [True, True, True, False]
    clock.now += 30  # still inside the window of the requests just made
    assert not limiter.hit([quota]).allowed
    local.close()


def test_redis_outage_falls_back_to_the_local_store_without_errors():
    with RedisServer() as server:
        redis_store = RedisStore(server.url, prefix="window:", timeout=0.2)
        limiter = MovingWindowLimiter(MemoryStore(), redis_store)
        quota = Quota("caller", 3, 60)
        assert limiter.hit([quota]).allowed
        server.stop()
        # The local store counts from zero: exact for this host, never an error.
        assert [limiter.hit([quota]).allowed for _ in range(4)] == [True, True, True, False]
        redis_store.close()


def test_a_closed_gate_refuses_on_redis_and_takes_no_slot(limiter):
    """Gates (an address locked out for guessing keys) are read in the same round trip as the quotas on Redis;
    the local twin leaves them to the caller, and says so."""
    quota = Quota("gated", 3, 60)
    if limiter.redis is None:
        verdict = limiter.hit([quota], gates=("authlock:somewhere",))
        assert verdict.allowed and not verdict.gates_checked and verdict.gate is None
        return
    assert limiter.hit([quota], gates=("authlock:here",)).gates_checked
    limiter.redis.set("authlock:here", "1234.5", ttl=60)
    refused = limiter.hit([quota], gates=("authlock:there", "authlock:here"))
    assert not refused.allowed and refused.gate == "1234.5" and refused.gates_checked
    assert limiter.hit([quota]).remaining == 1, "the refused request took no slot"
    client = redis.Redis.from_url(MAIN_REDIS_URL)
    client.hset(limiter.redis.k("authlock:hash"), "a", "b")  # a key of another type reads as open, not an error
    assert limiter.hit([quota], gates=("authlock:hash",)).allowed
    client.close()
