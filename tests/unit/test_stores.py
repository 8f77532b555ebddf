"""The three stores behave alike; Redis fails fast and recovers by itself."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from backend.resilience.store import FailoverStore, MemoryStore, StoreUnavailable
from backend.resilience.store_disk import DiskStore
from backend.resilience.store_redis import RedisStore
from tests.redis_helpers import MAIN_REDIS_URL, RedisServer, purge, unique_prefix


@pytest.fixture(params=["memory", "disk", "redis"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "disk":
        disk = DiskStore(tmp_path / "disk")
        yield disk
        disk.close()
    else:
        prefix = unique_prefix("store")
        redis_store = RedisStore(MAIN_REDIS_URL, prefix=prefix)
        yield redis_store
        purge(prefix)
        redis_store.close()


def test_get_set_ttl(store):
    store.set("a", "1", ttl=0.3)
    store.set("b", "2")
    assert store.get_many(["a", "b", "c"]) == ["1", "2", None]
    time.sleep(0.4)
    assert store.get("a") is None and store.get("b") == "2"


def test_add_is_set_if_absent(store):
    assert store.add("lock", "me", ttl=5) is True
    assert store.add("lock", "you", ttl=5) is False
    assert store.delete_if_equals("lock", "you") is False
    assert store.expire_if_equals("lock", "me", 5) is True
    assert store.delete_if_equals("lock", "me") is True
    assert store.add("lock", "you", ttl=5) is True


def test_set_if_equals_hands_a_lock_on_only_while_it_is_ours(store):
    store.add("lock", "me", ttl=5)
    assert store.set_if_equals("lock", "someone-else", "done", 5) is False
    assert store.get("lock") == "me"
    assert store.set_if_equals("lock", "me", "done", 0.2) is True
    assert store.get("lock") == "done"
    time.sleep(0.3)
    assert store.get("lock") is None  # with the new lifetime


def test_incr_is_atomic_under_threads(store):
    def bump():
        for _ in range(50):
            store.incr("counter")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("counter") == "200"


def test_incr_ttl_applies_on_creation(store):
    assert store.incr("window", ttl=0.3) == 1
    assert store.incr("window", ttl=0.3) == 2
    time.sleep(0.45)
    assert store.incr("window", ttl=0.3) == 1


def test_delete_prefix(store):
    for key in ("cache:a:1", "cache:a:2", "cache:b:1"):
        store.set(key, "x")
    assert store.delete_prefix("cache:a:") == 2
    assert store.get_many(["cache:a:1", "cache:b:1"]) == [None, "x"]


def test_redis_outage_costs_one_probe_per_interval_then_recovers():
    with RedisServer() as server:
        store = RedisStore(server.url, prefix=unique_prefix("outage"), timeout=0.2, probe_interval=0.5)
        store.set("k", "v")
        server.stop()
        with pytest.raises(StoreUnavailable):
            store.get("k")
        started = time.monotonic()
        for _ in range(1000):  # known down: refused at once, without touching the network
            with pytest.raises(StoreUnavailable):
                store.get("k")
        assert time.monotonic() - started < 0.5
        assert store.available() is False
        server.start()
        time.sleep(0.6)
        store.set("k", "again")
        assert store.get("k") == "again" and store.available() is True
        store.close()


def test_a_hanging_redis_is_cut_off_by_the_socket_timeout():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts connections in the kernel, never answers
    try:
        store = RedisStore(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", timeout=0.2, probe_interval=5)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.get("k")
        assert time.monotonic() - started < 1.0  # behaviour: one bounded wait, not the OS default
        with pytest.raises(StoreUnavailable):
            store.get("k")
        store.close()
    finally:
        listener.close()


def test_failover_store_uses_the_fallback_while_redis_is_down():
    fallback = MemoryStore()
    with RedisServer() as server:
        primary = RedisStore(server.url, prefix=unique_prefix("fo"), timeout=0.2, probe_interval=0.3)
        store = FailoverStore(primary, fallback)
        store.set("k", "redis")
        server.stop()
        store.set("k", "local")
        assert store.get("k") == "local" and store.name == "memory"
        server.start()
        time.sleep(0.4)
        assert store.get("k") is None  # a new, empty redis: sharing resumed through it
        store.set("k", "shared")
        assert primary.get("k") == "shared"
        primary.close()


def test_memory_store_sweeps_keys_nobody_reads_again():
    store = MemoryStore()
    for i in range(MemoryStore.SWEEP_EVERY - 1):
        store.incr(f"authfail:10.0.{i // 256}.{i % 256}", ttl=0.01)
    time.sleep(0.02)
    store.set("trigger", "x")  # the write that reaches the sweep
    assert len(store._data) == 1
