"""Key guessing is stopped: past AUTH_FAILURE_LIMIT_PER_MINUTE an address is refused for the window, right keys
included; IPv6 clients count by their /64; the lock is shared through Redis."""
from __future__ import annotations

import time

import pytest

from backend.http import auth as auth_module
from backend.http.client_address import address_bucket
from backend.observability import metrics
from tests.envelope import assert_error
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix

GUESSER = {"REMOTE_ADDR": "203.0.113.9"}
NEIGHBOUR = {"REMOTE_ADDR": "198.51.100.20"}


def _analyze(client, headers, environ):
    return client.post("/api/create_subtopics", json={"topic": "Locks"}, headers=headers, environ_base=environ)


def _stats(client, headers, environ):
    return client.get("/api/cache/stats", headers=headers, environ_base=environ)


def test_guessing_stops_at_the_limit_and_the_right_keys_are_refused_too(make_app, auth, admin):
    client = make_app(AUTH_FAILURE_LIMIT_PER_MINUTE=3).test_client()
    # The measured attack: a loop of admin-key guesses, then the right key.
    statuses = [_stats(client, {"X-Admin-Key": f"guess-{i}"}, GUESSER).status_code for i in range(30)]
    assert statuses == [401] * 3 + [429] * 27  # only 3 guesses were ever checked
    for response in (_stats(client, admin, GUESSER), _analyze(client, auth, GUESSER),
                     _analyze(client, {"Authorization": f"Bearer {auth['X-API-Key']}"}, GUESSER)):
        assert_error(response, 429, "RATE_LIMITED")
        assert 1 <= int(response.headers["Retry-After"]) <= auth_module.WINDOW_SECONDS
    # Another address is not affected.
    assert _stats(client, admin, NEIGHBOUR).status_code == 200
    assert _analyze(client, auth, NEIGHBOUR).status_code == 200


def test_client_and_admin_failures_share_one_counter(make_app, auth, admin):
    client = make_app(AUTH_FAILURE_LIMIT_PER_MINUTE=2).test_client()
    assert_error(_analyze(client, {"X-API-Key": "wrong"}, GUESSER), 401, "UNAUTHORIZED")
    assert_error(_stats(client, {"X-Admin-Key": "wrong"}, GUESSER), 401, "UNAUTHORIZED")
    assert_error(_analyze(client, auth, GUESSER), 429, "RATE_LIMITED")


def test_successes_do_not_reset_the_count(make_app, auth, admin):
    """A caller holding a client key cannot clear its failures with it and go on guessing the admin key."""
    client = make_app(AUTH_FAILURE_LIMIT_PER_MINUTE=3).test_client()
    for i in range(2):
        assert _stats(client, {"X-Admin-Key": f"guess-{i}"}, GUESSER).status_code == 401
        assert _analyze(client, auth, GUESSER).status_code == 200
    assert _stats(client, {"X-Admin-Key": "guess-3"}, GUESSER).status_code == 401
    assert_error(_stats(client, admin, GUESSER), 429, "RATE_LIMITED")


def test_the_lock_lifts_after_the_window(make_app, auth, monkeypatch):
    monkeypatch.setattr(auth_module, "WINDOW_SECONDS", 1)
    client = make_app(AUTH_FAILURE_LIMIT_PER_MINUTE=1).test_client()
    assert _analyze(client, {"X-API-Key": "wrong"}, GUESSER).status_code == 401
    assert_error(_analyze(client, auth, GUESSER), 429, "RATE_LIMITED")
    time.sleep(1.2)
    assert _analyze(client, auth, GUESSER).status_code == 200
    # ... and the count started again from zero.
    assert _analyze(client, {"X-API-Key": "wrong"}, GUESSER).status_code == 401


def test_ipv6_clients_are_counted_by_their_64(make_app, auth):
    client = make_app(AUTH_FAILURE_LIMIT_PER_MINUTE=2).test_client()
    # Two addresses of one /64 (what one subscriber is given) share a counter ...
    assert _analyze(client, {"X-API-Key": "wrong"}, {"REMOTE_ADDR": "2001:db8:1:2::1"}).status_code == 401
    assert _analyze(client, {"X-API-Key": "wrong"}, {"REMOTE_ADDR": "2001:db8:1:2:ffff::9"}).status_code == 401
    assert_error(_analyze(client, auth, {"REMOTE_ADDR": "2001:db8:1:2:abcd::7"}), 429, "RATE_LIMITED")
    # ... another /64 does not.
    assert _analyze(client, auth, {"REMOTE_ADDR": "2001:db8:1:3::1"}).status_code == 200


@pytest.mark.parametrize("address, bucket", [
    ("203.0.113.9", "203.0.113.9"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::ffff:203.0.113.9", "203.0.113.9"),  # IPv4 seen through a dual-stack socket counts as that IPv4
    ("", "unknown"), (None, "unknown"), ("not-an-address", "unknown"),
])
def test_address_buckets(address, bucket):
    assert address_bucket(address) == bucket


def test_the_lock_is_shared_by_every_instance_through_redis(make_app, auth, admin, tmp_path):
    prefix = unique_prefix("authlock")
    shared = {"CACHE_MODE": "redis", "REDIS_URL": MAIN_REDIS_URL, "REDIS_KEY_PREFIX": prefix,
              "AUTH_FAILURE_LIMIT_PER_MINUTE": 2}
    try:
        first = make_app(**shared, CACHE_DIR=str(tmp_path / "a")).test_client()
        second = make_app(**shared, CACHE_DIR=str(tmp_path / "b")).test_client()
        assert _stats(first, {"X-Admin-Key": "guess-1"}, GUESSER).status_code == 401
        assert _stats(second, {"X-Admin-Key": "guess-2"}, GUESSER).status_code == 401
        assert_error(_stats(first, admin, GUESSER), 429, "RATE_LIMITED")
        assert_error(_analyze(second, auth, GUESSER), 429, "RATE_LIMITED")
        assert _analyze(second, auth, NEIGHBOUR).status_code == 200
    finally:
        purge(prefix)


def test_lockout_refusals_are_counted(make_app, auth):
    client = make_app(AUTH_FAILURE_LIMIT_PER_MINUTE=1).test_client()
    route = metrics.RATE_LIMITED.labels("/api/cache/stats")
    before = route._value.get()
    _stats(client, {"X-Admin-Key": "wrong"}, GUESSER)
    _stats(client, {"X-Admin-Key": "wrong"}, GUESSER)
    assert route._value.get() == before + 1


def test_on_redis_the_ai_routes_read_the_lock_in_the_rate_limit_round_trip(make_app, auth, admin, tmp_path):
    """The lock costs the AI hit path no Redis round trip of its own: the rate-limit script reads it; a locked
    address is still refused there, right key included."""
    prefix = unique_prefix("authgate")
    try:
        app = make_app(CACHE_MODE="redis", REDIS_URL=MAIN_REDIS_URL, REDIS_KEY_PREFIX=prefix,
                       AUTH_FAILURE_LIMIT_PER_MINUTE=2, CACHE_DIR=str(tmp_path / "c"))
        control = app.extensions["backend"].shared.control
        lock_reads = []
        original_get = control.get

        def counting_get(key, *args, **kwargs):
            if key.startswith("authlock:"):
                lock_reads.append(key)
            return original_get(key, *args, **kwargs)

        control.get = counting_get
        client = app.test_client()
        for _ in range(3):
            assert _analyze(client, auth, GUESSER).status_code == 200
        assert lock_reads == [], "the AI route read the lock with a GET of its own"
        assert _stats(client, admin, GUESSER).status_code == 200 and len(lock_reads) == 1  # other routes do
        for guess in ("guess-1", "guess-2"):
            assert _stats(client, {"X-Admin-Key": guess}, GUESSER).status_code in (401, 429)
        assert_error(_analyze(client, auth, GUESSER), 429, "RATE_LIMITED")
        assert _analyze(client, auth, NEIGHBOUR).status_code == 200
    finally:
        purge(prefix)
