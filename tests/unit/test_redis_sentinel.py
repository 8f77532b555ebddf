"""Every Redis user through a real Sentinel deployment (primary, replica, three sentinels; passwords on the servers
and on the sentinels): the shared store, flask-limiter and the Huey queue all land on the primary; the store rides
a failover as an outage (fallback, then the probe finds the new primary), killed or demoted alive."""
from __future__ import annotations

import shutil

import pytest

from backend.jobs.engine import JobEngine
from backend.resilience.store import StoreUnavailable
from backend.resilience.store_redis import RedisStore
from backend.settings import load_settings
from tests.envelope import assert_error, assert_ok
from tests.redis_helpers import unique_prefix
from tests.sentinel_helpers import SERVICE, SentinelDeployment, wait_for

PASSWORD, SENTINEL_PASSWORD = "data-pw/1", "watch-pw"
QUERY = f"sentinel_password={SENTINEL_PASSWORD}"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    with SentinelDeployment(tmp_path_factory.mktemp("sentinel"), password=PASSWORD,
                            sentinel_password=SENTINEL_PASSWORD) as running:
        yield running


@pytest.fixture
def failing_over(tmp_path):
    """A deployment of the test's own, whose primary the test may kill."""
    with SentinelDeployment(tmp_path / "sentinel") as running:
        yield running


def url_of(deployment: SentinelDeployment, db: int = 0) -> str:
    return deployment.url(db, QUERY).replace(PASSWORD, "data-pw%2F1")


def test_the_store_reaches_the_primary_through_the_sentinels(deployment):
    prefix = unique_prefix("sentinel-store")
    store = RedisStore(url_of(deployment, db=2), prefix=prefix)
    try:
        store.set("text", "value", ttl=60)
        store.set_bytes("audio", b"\x00\xff", ttl=60)
        assert store.add("lock", "me", ttl=60) and not store.add("lock", "you", ttl=60)
        assert store.incr("counter", 5, ttl=60) == 5
        assert store.get_many(["text"]) == ["value"] and store.get_bytes("audio") == b"\x00\xff"
        assert store.ping() and store.available()
    finally:
        store.close()
    primary = deployment.client(deployment.master_port())
    primary.execute_command("SELECT", 2)
    assert primary.get(f"{prefix}text") == "value" and primary.get(f"{prefix}counter") == "5"


def test_the_limiter_counts_on_the_primary(make_app, admin, deployment):
    prefix = unique_prefix("sentinel-limits")
    app = make_app(CACHE_MODE="redis_only", REDIS_URL=url_of(deployment), REDIS_KEY_PREFIX=prefix,
                   RATE_LIMIT_DEFAULT="2/minute")
    client = app.test_client()
    for _ in range(2):
        assert_ok(client.get("/api/cache/stats", headers=admin))
    assert_error(client.get("/api/cache/stats", headers=admin), 429, "RATE_LIMITED")
    assert app.extensions["backend_limiter"]._storage_dead is False  # counted in Redis, not the fallback
    assert list(deployment.client(deployment.master_port()).scan_iter(match=f"*{prefix}ratelimit*"))


def test_a_job_is_queued_on_the_primary_by_named_connections(deployment):
    prefix = unique_prefix("sentinel-jobs")
    engine = JobEngine(load_settings({"REDIS_URL": url_of(deployment), "REDIS_KEY_PREFIX": prefix}))
    engine.enqueue("lesson", "job-through-sentinel")
    primary = deployment.client(deployment.master_port())
    assert primary.llen(f"{prefix}jobs:queue") == 1
    assert "backend-ai-jobs" in {c["name"] for c in primary.client_list()}
    engine.huey.storage.pool.disconnect()


def test_the_store_rides_a_primary_killed_as_an_outage_then_writes_to_the_promoted_replica(failing_over):
    prefix = unique_prefix("sentinel-kill")
    store = RedisStore(failing_over.url(), prefix=prefix, probe_interval=0.5)
    try:
        store.set("before", "1")  # pooled connections to the primary now exist
        wait_for(lambda: failing_over.client(failing_over.replica_port).get(f"{prefix}before"), 10, "replication")
        old = failing_over.kill_primary()
        with pytest.raises(StoreUnavailable):
            store.set("during", "1")
        assert not store.available()
        new = failing_over.wait_for_failover(old)
        wait_for(store.ping, 30, "the store's probe to reach the new primary")
        store.set("after", "2")
        store.set_bytes("after-bytes", b"\x01")
        assert store.get_many(["before", "after"]) == ["1", "2"]  # replicated, then promoted
    finally:
        store.close()
    assert failing_over.client(new).get(f"{prefix}after") == "2"


def test_a_demoted_primary_answering_readonly_is_an_outage_until_the_new_one_is_found(failing_over):
    prefix = unique_prefix("sentinel-demoted")
    store = RedisStore(failing_over.url(), prefix=prefix, probe_interval=0.5)
    try:
        store.set("before", "1")  # a pooled connection to the primary, kept open
        old = failing_over.master_port()
        failing_over.sentinel_client(failing_over.sentinels[0]).execute_command("SENTINEL", "FAILOVER", SERVICE)
        new = failing_over.wait_for_failover(old)
        # Demoted alive, without Sentinel's CLIENT KILL: the store's open connection now gets READONLY.
        failing_over.client(old).replicaof("127.0.0.1", new)
        with pytest.raises(StoreUnavailable):
            store.set("refused", "1")
        assert not store.available()
        wait_for(store.ping, 30, "the store's probe to reach the new primary")
        store.set("after", "2")
    finally:
        store.close()
    assert failing_over.client(new).get(f"{prefix}after") == "2"
    assert failing_over.client(new).get(f"{prefix}refused") is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificates")
def test_rediss_sentinel_speaks_tls_to_the_sentinels_and_the_primary(tmp_path):
    with SentinelDeployment(tmp_path / "sentinel", tls=True) as secured:
        prefix = unique_prefix("sentinel-tls")
        store = RedisStore(secured.url(query=f"ssl_ca_certs={secured.ca}", scheme="rediss+sentinel"), prefix=prefix)
        try:
            store.set("over-tls", "1")
            assert store.get_many(["over-tls"]) == ["1"]
        finally:
            store.close()
        assert secured.client(secured.master_port()).get(f"{prefix}over-tls") == "1"
        # The same URL without the CA: the servers' certificates are refused, an outage, not an error.
        untrusted = RedisStore(secured.url(scheme="rediss+sentinel"), prefix=prefix)
        try:
            assert not untrusted.ping()
        finally:
            untrusted.close()
