"""Operators' breaker changes reach every worker or are refused; a stored state of another shape is no 500."""
from __future__ import annotations

import time

import pytest
import redis

from tests.envelope import assert_error, assert_ok
from tests.redis_helpers import MAIN_REDIS_URL, RedisServer, purge, unique_prefix


@pytest.fixture
def redis_server():
    with RedisServer() as server:
        yield server


def test_forcing_open_or_resetting_while_redis_is_down_is_refused_not_lost(make_app, admin, redis_server):
    env = {"CACHE_MODE": "redis", "REDIS_URL": redis_server.url}
    client = make_app(**env).test_client()
    redis_server.stop()
    refused = assert_error(client.post("/api/circuit-breaker/open", json={"name": "gemini"}, headers=admin),
                           503, "SERVICE_UNAVAILABLE")
    assert "Redis is unreachable" in refused["message"] and "not forced open" in refused["message"]
    refused = assert_error(client.post("/api/circuit-breaker/reset", headers=admin), 503, "SERVICE_UNAVAILABLE")
    assert "Redis is unreachable" in refused["message"] and "not reset" in refused["message"]
    # While it is down the state is still readable (from the local fallback), and nothing claims a change.
    assert assert_ok(client.get("/api/circuit-breaker/state", headers=admin))["breakers"]["gemini"]["state"] \
        == "closed"

    redis_server.start()
    time.sleep(2.1)  # the store's probe interval: Redis is tried again
    assert_ok(client.post("/api/circuit-breaker/open", json={"name": "gemini"}, headers=admin))
    elsewhere = make_app(**env).test_client()  # another instance sharing the Redis
    assert assert_ok(elsewhere.get("/api/circuit-breaker/state", headers=admin))["breakers"]["gemini"]["state"] \
        == "forced_open"


@pytest.fixture
def shared_prefix():
    prefix = unique_prefix("breaker-shape")
    yield prefix
    purge(prefix)


@pytest.mark.parametrize("raw", ['{"state": "open", "failures": 7, "opened": 1700000000}', "garbage{",
                                 ('{"state": "open", "opened_at": 1, "next_probe_at": "soon", "consecutive": 0,'
                                  ' "buckets": {}, "trials": 0, "trial_ok": 0, "trial_since": 0}')])
def test_a_breaker_state_of_another_shape_is_read_as_closed_everywhere(make_app, auth, admin, fake_gemini,
                                                                       shared_prefix, raw):
    client = make_app(CACHE_MODE="redis_only", REDIS_URL=MAIN_REDIS_URL, REDIS_KEY_PREFIX=shared_prefix).test_client()
    redis.Redis.from_url(MAIN_REDIS_URL).set(f"{shared_prefix}breaker:gemini", raw)
    health = assert_ok(client.get("/api/health"))
    assert health["components"]["providers"]["gemini"]["breaker"] == "closed"
    assert assert_ok(client.get("/api/metrics"))["breakers"]["gemini"]["state"] == "closed"
    assert client.get("/metrics").status_code == 200
    assert assert_ok(client.get("/api/circuit-breaker/state", headers=admin))["breakers"]["gemini"]["state"] \
        == "closed"
    assert_ok(client.post("/api/create_subtopics", json={"topic": "Shapes"}, headers=auth))
    assert fake_gemini.calls == 1  # the call was allowed through, as with unreadable state
    assert_ok(client.post("/api/circuit-breaker/reset", json={"name": "gemini"}, headers=admin))
    assert assert_ok(client.post("/api/circuit-breaker/open", json={"name": "gemini"}, headers=admin))[
        "breakers"]["gemini"]["state"] == "forced_open"
