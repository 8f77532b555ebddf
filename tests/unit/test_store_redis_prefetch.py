"""Reads asked for ahead ride with the thread's next Lua script, on a real Redis: the script answers as it always did,
the value comes from that round trip once, and nothing read ahead outlives a write, a forget or its thread."""
from __future__ import annotations

import threading
import uuid

import pytest
import redis

from backend.resilience.store import StoreUnavailable
from backend.resilience.store_redis import RedisStore
from tests.redis_helpers import MAIN_REDIS_URL, purge, spare_port, unique_prefix

# A script answering text and numbers, as the rate limits' does (a number, a float as text, a gate's value).
SCRIPT = "return {1, tostring(1.5), redis.call('GET', KEYS[1]) or 'none', ARGV[1]}"


@pytest.fixture
def store():
    prefix = unique_prefix("prefetch")
    redis_store = RedisStore(MAIN_REDIS_URL, prefix=prefix)
    yield redis_store
    purge(prefix)
    redis_store.close()


@pytest.fixture
def raw():
    client = redis.Redis.from_url(MAIN_REDIS_URL)
    yield client
    client.close()


class Sends:
    """Counts what this process writes to Redis (each a round trip): a spy that calls through."""

    def __init__(self, monkeypatch):
        self.count = 0
        original = redis.connection.AbstractConnection.send_packed_command

        def counted(connection, command, check_health=True):
            self.count += 1
            return original(connection, command, check_health)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)


def test_a_read_asked_ahead_comes_back_with_the_script_in_one_round_trip(store, raw, monkeypatch):
    script = store.script(SCRIPT)
    store.set("gate", "open")
    store.set_bytes("clip", b"\xff\xfbaudio")
    plain = store.call(lambda: script(keys=[store.k("gate")], args=["x"]))
    sends = Sends(monkeypatch)
    store.prefetch_bytes("clip")
    riding = store.call(lambda: script(keys=[store.k("gate")], args=["x"]))
    assert sends.count == 1
    raw.set(store.k("clip"), b"changed since")
    sends.count = 0
    assert store.get_bytes("clip") == b"\xff\xfbaudio"  # the value read with the script, no round trip of its own
    assert sends.count == 0
    assert riding == plain == [1, "1.5", "open", "x"]  # decoded as the text client decodes it
    assert store.get_bytes("clip") == b"changed since"  # taken once: the next read goes to Redis


def test_an_absent_key_read_ahead_is_a_miss_without_a_round_trip(store, monkeypatch):
    script = store.script(SCRIPT)
    store.prefetch_bytes("nothing")
    store.call(lambda: script(keys=[store.k("gate")], args=["x"]))
    sends = Sends(monkeypatch)
    assert store.get_bytes("nothing") is None and sends.count == 0


def test_without_a_read_asked_for_the_script_goes_alone(store, monkeypatch):
    script = store.script(SCRIPT)
    store.set_bytes("clip", b"now")
    store.call(lambda: script(keys=[store.k("gate")], args=["y"]))  # loaded, connections open
    sends = Sends(monkeypatch)
    assert store.call(lambda: script(keys=[store.k("gate")], args=["y"])) == [1, "1.5", "none", "y"]
    assert sends.count == 1
    assert store.get_bytes("clip") == b"now" and sends.count == 2


@pytest.mark.parametrize("step", ["set_bytes", "delete", "forget"])
def test_a_write_or_a_forget_drops_what_was_read_ahead(store, raw, step):
    script = store.script(SCRIPT)
    store.set_bytes("clip", b"old")
    store.prefetch_bytes("clip")
    store.call(lambda: script(keys=[store.k("gate")], args=["x"]))
    if step == "set_bytes":
        store.set_bytes("clip", b"written by this thread")
        assert store.get_bytes("clip") == b"written by this thread"
    elif step == "delete":
        store.delete(["clip"])
        assert store.get_bytes("clip") is None
    else:
        raw.set(store.k("clip"), b"written elsewhere")
        store.forget_prefetched()
        assert store.get_bytes("clip") == b"written elsewhere"


def test_what_a_thread_read_ahead_is_its_own(store, raw):
    script = store.script(SCRIPT)
    store.set_bytes("clip", b"old")
    store.prefetch_bytes("clip")
    store.call(lambda: script(keys=[store.k("gate")], args=["x"]))
    raw.set(store.k("clip"), b"new")
    seen = []
    other = threading.Thread(target=lambda: seen.append(store.get_bytes("clip")))
    other.start()
    other.join()
    assert seen == [b"new"] and store.get_bytes("clip") == b"old"


def test_a_script_redis_does_not_know_yet_is_loaded_and_keeps_the_read(store, monkeypatch):
    # A source never sent before: its EVALSHA answers NOSCRIPT, as after a Redis restart (no SCRIPT FLUSH on a
    # Redis other tests share).
    script = store.script(f"-- {uuid.uuid4().hex}\n{SCRIPT}")
    store.set_bytes("clip", b"audio")
    store.prefetch_bytes("clip")
    assert store.call(lambda: script(keys=[store.k("gate")], args=["x"])) == [1, "1.5", "none", "x"]
    sends = Sends(monkeypatch)
    assert store.get_bytes("clip") == b"audio" and sends.count == 0


def test_a_script_error_is_the_stores_error_and_the_read_is_kept(store, monkeypatch):
    script = store.script("return redis.error_reply('ERR refused by the script')")
    store.set_bytes("clip", b"audio")
    store.prefetch_bytes("clip")
    with pytest.raises(StoreUnavailable):
        store.call(lambda: script(keys=[], args=[]))
    sends = Sends(monkeypatch)
    assert store.get_bytes("clip") == b"audio" and sends.count == 0


def test_nothing_is_read_ahead_while_redis_is_known_down(store, monkeypatch):
    script = store.script(SCRIPT)
    store.set_bytes("clip", b"audio")
    monkeypatch.setattr(type(store), "available", lambda self: False)
    store.prefetch_bytes("clip")
    monkeypatch.undo()
    store.call(lambda: script(keys=[store.k("gate")], args=["x"]))
    sends = Sends(monkeypatch)
    assert store.get_bytes("clip") == b"audio" and sends.count == 1  # read on its own: nothing was asked ahead


def test_a_dead_redis_fails_the_riding_script_fast_as_unavailable():
    dead = RedisStore(f"redis://127.0.0.1:{spare_port()}/0", prefix=unique_prefix("prefetch"))
    try:
        script = dead.script(SCRIPT)
        dead.prefetch_bytes("clip")
        with pytest.raises(StoreUnavailable):
            dead.call(lambda: script(keys=["k"], args=["x"]))
        assert not dead.available()
    finally:
        dead.close()
