"""Writes nobody waits for go to Redis together (backend/resilience/redis_batch.py): a paid miss's four closing
writes in one round trip, in the order they were issued, each still applied, and each failure still counted
somewhere. Round trips are counted where redis-py writes to the socket; every command reaches a real Redis."""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from redis.connection import AbstractConnection

from backend.resilience import spend
from backend.resilience.breaker import CircuitBreaker
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.cache import TieredCache
from backend.resilience.cache_tiers import MemoryTier, StoreTier
from backend.resilience.policy import ProviderPolicy
from backend.resilience.singleflight import DONE, SingleFlight
from backend.resilience.spend import Account, Limits
from backend.resilience.spend_meter import SpendMeter
from backend.resilience.store import FailoverStore, MemoryStore
from backend.resilience.store_redis import RedisStore
from tests.redis_helpers import MAIN_REDIS_URL, RedisServer, purge, unique_prefix

KEY = "analyze:v1:m:batched"


@pytest.fixture
def store() -> Iterator[RedisStore]:
    prefix = unique_prefix("batch")
    store = RedisStore(MAIN_REDIS_URL, prefix=prefix)
    yield store
    store.close()
    purge(prefix)


@pytest.fixture
def trips(monkeypatch) -> list[list[str]]:
    """Each round trip this process sends to Redis: the command names it carried (a pipeline carries several).
    A new connection's handshake (HELLO, CLIENT SETINFO) is left out: it is the pool's, once per connection."""
    sent: list[list[str]] = []
    original = AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        chunks = command if isinstance(command, (list, tuple)) else [command]
        names = [name for name in command_names(b"".join(bytes(c) for c in chunks))
                 if name not in ("HELLO", "CLIENT")]
        if names:
            sent.append(names)
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return sent


def command_names(packed: bytes) -> list[str]:
    """The command names in RESP-encoded commands (arrays of bulk strings)."""
    names, at = [], 0
    while at < len(packed):
        end = packed.index(b"\r\n", at)
        count, at = int(packed[at + 1:end]), end + 2
        for index in range(count):
            end = packed.index(b"\r\n", at)
            size, at = int(packed[at + 1:end]), end + 2
            if index == 0:
                names.append(packed[at:at + size].decode())
            at += size + 2
    return names


def wiring(store: RedisStore) -> tuple[ProviderPolicy, CircuitBreaker, SpendMeter, TieredCache, Account]:
    """A policy as create_app assembles it on Redis: cache tiers, flights, breaker, budgets, batched writes."""
    local = MemoryStore()
    control = FailoverStore(store, local)
    cache = TieredCache("redis_only", [MemoryTier(1 << 20), StoreTier(store)], control, default_ttl=60,
                        shared=store)
    breaker = CircuitBreaker("gemini", BreakerConfig(failure_threshold=3), local=local, redis=store)
    meter = SpendMeter(local, store)
    policy = ProviderPolicy("gemini", "analyze", deadline_seconds=5, cache=cache, flights=SingleFlight(control),
                            breaker=breaker, deferred_writes=store.deferring)
    ann = Account("app:ann", "app", lambda version: Limits(None, None, version or "0"), meter)
    return policy, breaker, meter, cache, ann


def paid_answer(_remaining: float) -> dict:
    from backend.observability import cost

    cost.charge("gemini", 0.002)
    return {"ok": True}


def test_a_paid_miss_ends_in_one_round_trip_and_every_write_lands(store, trips):
    policy, breaker, meter, cache, ann = wiring(store)
    with spend.paying(ann):
        policy.execute("analyze:v1:m:first", paid_answer, cost_bound=0.01)  # connections, scripts, generation
        trips.clear()
        outcome = policy.execute(KEY, paid_answer, cost_bound=0.01)
    assert outcome.cache == "MISS"
    # Cache read, flight lock, budget admission, breaker permit; then the four closing writes together.
    assert trips == [["GET"], ["SET"], ["EVALSHA"], ["EVALSHA"], ["EVALSHA", "EVALSHA", "SET", "EVALSHA"]]
    assert breaker.state()["calls_in_window"] == 2  # both verdicts were recorded
    caller, *_ = meter.usage(ann)
    assert caller.calls == 2 and caller.held == 0 and caller.spent == pytest.approx(0.004)  # both settled
    assert store.get(f"flight:{KEY}") == DONE  # the lock handed on after the entry was written
    cache.tiers = cache.tiers[1:]  # Redis alone now: the entry is there
    entry = cache.lookup(KEY)
    assert entry is not None and entry.fresh and entry.value == {"ok": True}


def test_a_command_that_cannot_wait_sends_the_queued_writes_first_in_order(store, trips):
    with store.deferring():
        store.set_bytes("k", b"one")
        store.set_bytes("k", b"two")
        assert trips == []  # queued
        assert store.get_bytes("k") == b"two"  # the thread reads its own writes, in order
    assert trips == [["SET", "SET"], ["GET"]]


def test_nested_blocks_send_once_at_the_outermost_end(store, trips):
    with store.deferring():
        with store.deferring():
            store.set_bytes("a", b"1")
        assert trips == []
        store.set_bytes("b", b"2")
    assert trips == [["SET", "SET"]]
    assert store.binary.mget([store.k("a"), store.k("b")]) == [b"1", b"2"]


def test_another_thread_is_not_batched(store, trips):
    import threading

    with store.deferring():
        worker = threading.Thread(target=lambda: store.set_bytes("other", b"x"))
        worker.start()
        worker.join()
        assert trips == [["SET"]]  # sent at once: the block belongs to this thread


def test_a_script_redis_forgot_is_loaded_and_applied():
    server = RedisServer().start()  # its own: forgetting the scripts of the shared one would disturb other tests
    store = RedisStore(server.url, prefix=unique_prefix("batch"))
    try:
        breaker = CircuitBreaker("gemini", BreakerConfig(failure_threshold=3), local=MemoryStore(), redis=store)
        permit = breaker.acquire()
        store.client.script_flush()  # as after a restart of Redis
        with store.deferring():
            breaker.record(permit, failed=True)
            store.set_bytes("k", b"v")
        assert breaker.state()["failures_in_window"] == 1
        assert store.get_bytes("k") == b"v"
    finally:
        store.close()
        server.stop()


def test_when_redis_is_gone_at_the_flush_the_fallbacks_count_locally():
    server = RedisServer().start()
    store = RedisStore(server.url, prefix=unique_prefix("batch"), probe_interval=30)
    try:
        local = MemoryStore()
        breaker = CircuitBreaker("gemini", BreakerConfig(failure_threshold=3), local=local, redis=store)
        meter = SpendMeter(local, store)
        ann = Account("app:ann", "app", lambda version: Limits(None, None, version or "0"), meter)
        permit = breaker.acquire()
        hold = meter.admit(ann, 0.01, 30)
        with store.deferring():
            breaker.record(permit, failed=True)
            meter.settle(hold, 0.004)
            store.set_bytes("k", b"v")
            server.stop()
        assert not store.available()  # the failed flush took Redis out, as any failed command does
        assert breaker.state()["failures_in_window"] == 1  # the verdict went to the local store
        caller, *_ = meter.usage(ann)
        assert caller.spent == pytest.approx(0.004)  # and so did the cost
    finally:
        store.close()
        server.stop()


def test_without_a_block_each_write_is_sent_at_once(store, trips):
    breaker = CircuitBreaker("gemini", BreakerConfig(failure_threshold=3), local=MemoryStore(), redis=store)
    permit = breaker.acquire()
    trips.clear()
    breaker.record(permit, failed=False)
    assert trips == [["EVALSHA"]]
    assert breaker.state()["calls_in_window"] == 1


def test_while_redis_is_known_down_the_flight_lock_is_handed_on_where_it_was_taken(store):
    store.outage.failed(ConnectionError("down"))  # as after a failed command: the local store decides meanwhile
    local = MemoryStore()
    flights = SingleFlight(FailoverStore(store, local))
    with store.deferring():
        value, led = flights.run(KEY, lambda: {"ok": True}, lambda: None, deadline=time.monotonic() + 5)
    assert (value, led) == ({"ok": True}, True)
    assert local.get(f"flight:{KEY}") == DONE  # not queued for a Redis that is down


def test_a_reply_callback_that_fails_spoils_neither_the_batch_nor_the_request(store, caplog):
    def broken(_reply):
        raise ValueError("a bug in a callback")

    with store.deferring():
        store.send(lambda client: client.set(store.k("a"), "1"), replied=broken)
        store.set_bytes("b", b"2")
    assert store.get_many(["a"]) == ["1"] and store.get_bytes("b") == b"2"
    assert "reading the reply of a redis write failed" in caplog.text
