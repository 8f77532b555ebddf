"""The moving-window limiter: the Lua script on Redis and its Python twin on the local stores agree."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

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


def test_exact_under_concurrency(limiter):
    quota = Quota("busy", 25, 60)
    with ThreadPoolExecutor(16) as pool:
        allowed = list(pool.map(lambda _: limiter.hit([quota]).allowed, range(80)))
    assert allowed.count(True) == 25


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
