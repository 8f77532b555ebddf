"""Callers without a valid key are limited by address alone (X-User-ID is theirs to invent), on real Redis: rotating
the header no longer escapes RATE_LIMIT_DEFAULT or RATE_LIMIT_AI, and cannot mint rate-limit keys in Redis."""
from __future__ import annotations

import uuid

import pytest
import redis

from backend.http.auth import require_client_key
from backend.http.envelope import ok
from tests.envelope import assert_error
from tests.redis_helpers import MAIN_REDIS_URL, unique_prefix

N = 40
LIMIT = 5
ATTACKER = {"REMOTE_ADDR": "203.0.113.50"}
OTHER = {"REMOTE_ADDR": "198.51.100.60"}


@pytest.fixture
def prefix():
    """A unique Redis key prefix, and every key that holds it removed afterwards (flask-limiter's keys start
    with its own "LIMITS:" ahead of the prefix)."""
    value = unique_prefix("anon")
    yield value
    client = redis.Redis.from_url(MAIN_REDIS_URL)
    names = list(client.scan_iter(match=f"*{value}*", count=1000))
    if names:
        client.delete(*names)
    client.close()


def redis_keys(prefix: str) -> list[str]:
    """Every key under the test's prefix, by SCAN."""
    client = redis.Redis.from_url(MAIN_REDIS_URL)
    try:
        return [name.decode() for name in client.scan_iter(match=f"*{prefix}*", count=1000)]
    finally:
        client.close()


def rate_limit_keys(prefix: str) -> list[str]:
    return [name for name in redis_keys(prefix) if "ratelimit" in name]


@pytest.fixture
def on_redis(make_app, prefix, tmp_path):
    """Apps on the machine's Redis; failed-auth throttling out of the way (it has its own tests)."""
    def build(**overrides):
        return make_app(CACHE_MODE="redis", REDIS_URL=MAIN_REDIS_URL, REDIS_KEY_PREFIX=prefix,
                        CACHE_DIR=str(tmp_path / "cache"), AUTH_FAILURE_LIMIT_PER_MINUTE=100000, **overrides)
    return build


def random_user() -> dict[str, str]:
    return {"X-User-ID": uuid.uuid4().hex}


@pytest.mark.parametrize("credentials", [{}, {"X-Admin-Key": "wrong"}], ids=["no-key", "wrong-key"])
def test_rotating_user_ids_without_a_key_is_limited_by_address_on_default_routes(on_redis, prefix, credentials):
    client = on_redis(RATE_LIMIT_DEFAULT=f"{LIMIT}/minute").test_client()
    statuses = [client.get("/api/cache/stats", headers={**credentials, **random_user()},
                           environ_base=ATTACKER).status_code for _ in range(N)]
    assert statuses == [401] * LIMIT + [429] * (N - LIMIT)
    assert_error(client.get("/api/cache/stats", headers=random_user(), environ_base=ATTACKER), 429, "RATE_LIMITED")
    # Another address has its own budget.
    assert client.get("/api/cache/stats", headers=random_user(), environ_base=OTHER).status_code == 401
    # Keys in Redis: a handful per address (route limit and per-address cap), not one per invented user.
    assert 1 <= len(rate_limit_keys(prefix)) <= 4


@pytest.mark.parametrize("credentials", [{}, {"X-API-Key": "wrong"}], ids=["no-key", "wrong-key"])
def test_rotating_user_ids_without_a_key_is_limited_by_address_on_ai_routes(on_redis, prefix, credentials):
    client = on_redis(RATE_LIMIT_AI=f"{LIMIT}/minute").test_client()
    statuses = [client.post("/api/create_subtopics", json={"topic": "Flood"}, headers={**credentials, **random_user()},
                            environ_base=ATTACKER).status_code for _ in range(N)]
    assert statuses == [401] * LIMIT + [429] * (N - LIMIT)
    assert len(rate_limit_keys(prefix)) <= 2  # this address's two AI quotas


def test_an_ipv6_flood_counts_by_its_64(on_redis, prefix):
    client = on_redis(RATE_LIMIT_DEFAULT=f"{LIMIT}/minute").test_client()
    statuses = [client.get("/api/cache/stats", headers=random_user(),
                           environ_base={"REMOTE_ADDR": f"2001:db8:7:7::{i + 1:x}"}).status_code for i in range(N)]
    assert statuses == [401] * LIMIT + [429] * (N - LIMIT)
    assert len(rate_limit_keys(prefix)) <= 4


def test_a_valid_key_keeps_per_user_budgets_under_a_per_key_cap(on_redis, prefix, auth):
    """Default routes taking a client key (such as the conversation and job routes to come): users within a key
    have their own budget, and inventing users stops at RATE_LIMIT_DEFAULT_PER_KEY."""
    app = on_redis(RATE_LIMIT_DEFAULT="2/minute", RATE_LIMIT_DEFAULT_PER_KEY="6/minute")
    app.add_url_rule("/api/probe", "probe", require_client_key(lambda: ok({"probe": True})))
    client = app.test_client()
    same_user = [client.get("/api/probe", headers={**auth, "X-User-ID": "u1"}).status_code for _ in range(3)]
    assert same_user == [200, 200, 429]
    invented = [client.get("/api/probe", headers={**auth, **random_user()}).status_code for _ in range(N)]
    # 6 per key, 3 already taken by u1 (the cap is taken first, so its refused third request counts too).
    assert invented.count(200) == 3 and set(invented[3:]) == {429}
    # The per-key cap refuses before a per-user key is written: at most one key per allowed request, not per N.
    assert len(rate_limit_keys(prefix)) <= 6 + 1


def test_with_auth_off_the_caller_is_the_address(on_redis, prefix):
    """Development without API_KEYS: every caller is anonymous, so X-User-ID does not split the budget."""
    client = on_redis(API_KEYS="", RATE_LIMIT_AI=f"{LIMIT}/minute").test_client()
    statuses = [client.post("/api/create_subtopics", json={"topic": "Dev"}, headers=random_user(),
                            environ_base=ATTACKER).status_code for _ in range(LIMIT + 3)]
    assert statuses == [200] * LIMIT + [429] * 3
    assert client.post("/api/create_subtopics", json={"topic": "Dev"}, environ_base=OTHER).status_code == 200
