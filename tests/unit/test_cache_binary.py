"""Binary values (synthesised speech) in every cache tier: kept as bytes, read back as the same bytes, never pickled."""
from __future__ import annotations

import base64
import json
import logging
import os
import sqlite3
import threading
import time

import diskcache
import pytest
import redis

from backend.errors import ProviderError
from backend.observability import metrics
from backend.resilience.cache import MAGIC, TieredCache
from backend.resilience.cache_tiers import MemoryTier, StoreTier
from backend.resilience.policy import ProviderPolicy
from backend.resilience.shared_state import SharedState, build_shared_state
from backend.resilience.singleflight import SingleFlight
from backend.resilience.store import FailoverStore, MemoryStore
from backend.resilience.store_disk import DiskStore
from backend.resilience.store_redis import RedisStore
from backend.settings import load_settings
from tests.redis_helpers import MAIN_REDIS_URL, RedisServer, purge, unique_prefix

KEY = "speech:v1:en-US:JennyNeural:mp3:abc"
CLIPS = {
    "empty": b"",
    "nul_and_invalid_utf8": b"ID3\x00\x00\xff\xfe\xc3\x28\x80{\n\"v\":" + bytes(range(256)),
    "one_megabyte": os.urandom(1 << 20),
}


def too_large() -> float:
    return metrics.CACHE_OPERATIONS.labels("set", "too_large")._value.get()


@pytest.fixture
def prefix():
    chosen = unique_prefix("binary")
    yield chosen
    purge(chosen)


@pytest.fixture
def opened():
    """Close every store and shared state a test opens."""
    things: list = []
    yield things
    for thing in things:
        thing.close()


def shared_state(mode: str, tmp_path, prefix: str, opened: list, redis_url: str = MAIN_REDIS_URL) -> SharedState:
    """One process's stores and cache for a CACHE_MODE, as the app builds them."""
    settings = load_settings({"APP_ENV": "testing", "CACHE_MODE": mode, "CACHE_DIR": str(tmp_path / "cache"),
                              "REDIS_URL": redis_url if mode.startswith("redis") else "",
                              "REDIS_KEY_PREFIX": prefix})
    state = build_shared_state(settings)
    opened.append(state)
    return state


def single_tier_cache(name: str, tmp_path, prefix: str, opened: list) -> TieredCache:
    if name == "memory":
        return TieredCache("memory", [MemoryTier(8 << 20)], MemoryStore(), default_ttl=60)
    store = DiskStore(tmp_path / "disk") if name == "disk" else RedisStore(MAIN_REDIS_URL, prefix=prefix)
    opened.append(store)
    return TieredCache(name, [StoreTier(store)], store, default_ttl=60, shared=store)


@pytest.mark.parametrize("tier", ["memory", "disk", "redis"])
def test_bytes_round_trip_through_each_tier_alone(tier, tmp_path, prefix, opened):
    cache = single_tier_cache(tier, tmp_path, prefix, opened)
    for name, clip in CLIPS.items():
        cache.store(f"{KEY}:{name}", clip, cost_usd=0.0015)
        entry = cache.lookup(f"{KEY}:{name}")
        assert entry is not None and type(entry.value) is bytes and entry.value == clip, name
        assert (entry.fresh, entry.tier, entry.cost_usd) == (True, tier, 0.0015)
    cache.store(f"{KEY}:json", {"voices": [{"name": "Jenny", "locale": "en-US"}], "text": "\x00é\ud800"})
    assert cache.lookup(f"{KEY}:json").value == {"voices": [{"name": "Jenny", "locale": "en-US"}],
                                                 "text": "\x00é\ud800"}


@pytest.mark.parametrize("mode, found_in", [("memory", "memory"), ("disk", "disk"), ("redis", "disk"),
                                             ("redis_only", "redis")])
def test_bytes_round_trip_in_every_cache_mode(mode, found_in, tmp_path, prefix, opened):
    writer = shared_state(mode, tmp_path, prefix, opened)
    # Another worker (its own memory tier) reads what the writer stored; in memory mode nobody else can.
    reader = writer if mode == "memory" else shared_state(mode, tmp_path, prefix, opened)
    for name, clip in CLIPS.items():
        writer.cache.store(f"{KEY}:{name}", clip)
        entry = reader.cache.lookup(f"{KEY}:{name}")
        assert entry is not None and type(entry.value) is bytes and entry.value == clip, name
        assert entry.tier == found_in
    writer.cache.store(f"{KEY}:json", ["still", "json"])
    assert reader.cache.lookup(f"{KEY}:json").value == ["still", "json"]


def test_a_clip_found_in_redis_is_promoted_to_memory(tmp_path, prefix, opened):
    clip = CLIPS["one_megabyte"]
    shared_state("redis_only", tmp_path, prefix, opened).cache.store(KEY, clip)
    reader = shared_state("redis_only", tmp_path, prefix, opened).cache
    assert reader.lookup(KEY).tier == "redis"
    again = reader.lookup(KEY)
    assert (again.tier, again.value) == ("memory", clip)
    assert reader.tiers[0].stats()["bytes"] >= len(clip)  # the memory tier counts the entry's bytes


@pytest.mark.parametrize("mode", ["redis", "redis_only"])
def test_a_redis_outage_midway_still_serves_clips(mode, tmp_path, prefix, opened):
    before, during = os.urandom(50_000), os.urandom(200_000)
    with RedisServer() as server:
        writer = shared_state(mode, tmp_path, prefix, opened, redis_url=server.url)
        writer.cache.store(f"{KEY}:before", before)
        assert redis.Redis.from_url(server.url).exists(f"{prefix}cache:{KEY}:before") == 1
        server.stop()
        writer.cache.store(f"{KEY}:during", during)  # Redis is down: the other tiers take it
        assert writer.cache.lookup(f"{KEY}:before").value == before
        assert writer.cache.lookup(f"{KEY}:during").value == during
        if mode == "redis":  # another worker of the host finds both on the disk
            other = shared_state(mode, tmp_path, prefix, opened, redis_url=server.url).cache
            for name, clip in (("before", before), ("during", during)):
                entry = other.lookup(f"{KEY}:{name}")
                assert (entry.tier, entry.value) == ("disk", clip)
        assert writer.redis is not None and writer.redis.available() is False


def test_a_clip_costs_its_size_in_redis_not_base64(prefix, opened):
    store = RedisStore(MAIN_REDIS_URL, prefix=prefix)
    opened.append(store)
    cache = TieredCache("redis_only", [StoreTier(store)], store, default_ttl=60, shared=store)
    clip = os.urandom(100_000)
    cache.store(KEY, clip, cost_usd=0.0016)
    raw = redis.Redis.from_url(MAIN_REDIS_URL)
    stored = raw.get(f"{prefix}cache:{KEY}")
    assert stored.startswith(MAGIC) and stored.endswith(clip)
    length = raw.strlen(f"{prefix}cache:{KEY}")
    assert 100_000 < length < 100_000 + 128  # payload + a small header
    raw.set(f"{prefix}base64", base64.b64encode(clip))  # what a text-only store would have to keep
    used, as_base64 = raw.memory_usage(f"{prefix}cache:{KEY}"), raw.memory_usage(f"{prefix}base64")
    # jemalloc rounds an allocation of this size up to a multiple of 16 KiB: that much, and no more, on top.
    assert used <= length + 16 * 1024 + 256 and used < as_base64
    raw.close()


def test_the_disk_store_never_pickles(tmp_path, opened):
    store = DiskStore(tmp_path / "disk")
    opened.append(store)
    for refused in ("text", bytearray(b"clip"), memoryview(b"clip"), {"a": 1}):
        with pytest.raises(TypeError):
            store.set_bytes("cache:k", refused)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.cache.set("cache:k", object())  # what diskcache's base Disk would pickle
    store.set_bytes("cache:small", b"\x00" * 10)
    store.set_bytes("cache:large", CLIPS["one_megabyte"])
    store.set("counter", "1")
    modes = {mode for (mode,) in sqlite3.connect(tmp_path / "disk" / "cache.db").execute("SELECT mode FROM Cache")}
    assert diskcache.core.MODE_PICKLE not in modes and len(modes) == 3  # bytes in the row, in a file; text as JSON
    assert store.get_bytes("cache:large") == CLIPS["one_megabyte"] and store.get("counter") == "1"


class _Planted:
    """A pickle that makes a directory when loaded: proof of whether anything unpickled it."""

    def __init__(self, witness: str):
        self.witness = witness

    def __reduce__(self):
        return os.mkdir, (self.witness,)


class _PicklingDisk(diskcache.JSONDisk):
    """Keys as the disk store writes them, values as diskcache's base Disk stores objects: pickled."""

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        return diskcache.Disk.store(self, value, read, key=key)


def test_a_pickled_row_planted_on_the_disk_is_refused_not_loaded(tmp_path, opened):
    witness = tmp_path / "unpickled"
    planter = diskcache.Cache(str(tmp_path / "disk"), disk=_PicklingDisk, disk_compress_level=0)
    planter.set(f"cache:{KEY}", _Planted(str(witness)))
    planter.close()
    store = DiskStore(tmp_path / "disk")
    opened.append(store)
    with pytest.raises(TypeError, match="pickle"):
        store.get_bytes(f"cache:{KEY}")
    assert not witness.exists()


def test_a_value_over_max_value_bytes_is_not_stored(tmp_path, prefix, opened, caplog):
    disk, shared = DiskStore(tmp_path / "disk"), RedisStore(MAIN_REDIS_URL, prefix=prefix)
    opened += [disk, shared]
    cache = TieredCache("redis", [MemoryTier(8 << 20), StoreTier(disk), StoreTier(shared)],
                        FailoverStore(shared, disk), default_ttl=60, shared=shared, max_value_bytes=1000)
    refused = too_large()
    with caplog.at_level(logging.DEBUG, logger="backend.resilience.cache"):
        cache.store(f"{KEY}:big", b"\x01" * 1001)
    assert cache.lookup(f"{KEY}:big") is None and too_large() == refused + 1
    assert disk.get_bytes(f"cache:{KEY}:big") is None and shared.get_bytes(f"cache:{KEY}:big") is None
    assert any(r.levelno == logging.DEBUG and "too large" in r.getMessage() for r in caplog.records)
    cache.store(f"{KEY}:fits", b"\x01" * 1000)
    assert cache.lookup(f"{KEY}:fits").value == b"\x01" * 1000 and too_large() == refused + 1
    default = TieredCache("memory", [MemoryTier(16 << 20)], MemoryStore(), default_ttl=60)
    assert default.max_value_bytes == 2 * 1024 * 1024
    default.store(KEY, b"\x02" * (2 * 1024 * 1024 + 1))
    assert default.lookup(KEY) is None and too_large() == refused + 2


def redis_policy(prefix: str, opened: list, *, ttl: float | None = None) -> ProviderPolicy:
    """One process's synthesis policy: its own memory tier, Redis shared, single-flight through Redis."""
    store = RedisStore(MAIN_REDIS_URL, prefix=prefix)
    opened.append(store)
    control = FailoverStore(store, MemoryStore())
    cache = TieredCache("redis_only", [MemoryTier(8 << 20), StoreTier(store)], control, default_ttl=60,
                        stale_grace=60, shared=store)
    return ProviderPolicy("azure_tts", "speech", deadline_seconds=5, cache=cache, flights=SingleFlight(control),
                          ttl=ttl)


def test_a_policy_caches_a_call_returning_bytes(prefix, opened):
    clip, calls = CLIPS["one_megabyte"], []
    policy = redis_policy(prefix, opened, ttl=0.3)

    def synthesise(_remaining: float) -> bytes:
        calls.append(1)
        return clip

    first, second = policy.execute(KEY, synthesise), policy.execute(KEY, synthesise)
    assert (first.cache, second.cache, len(calls)) == ("MISS", "HIT", 1)
    assert type(second.value) is bytes and second.value == clip
    time.sleep(0.35)  # stale now, within the grace

    def fail(_remaining: float) -> bytes:
        raise ProviderError("synthesis is down", provider="azure_tts")

    stale = policy.execute(KEY, fail)
    assert (stale.cache, stale.value) == ("STALE", clip)


def test_a_follower_in_another_process_gets_the_leaders_bytes_from_redis(prefix, opened):
    clip, calls = os.urandom(300_000), []
    leader, follower = redis_policy(prefix, opened), redis_policy(prefix, opened)

    def synthesise(_remaining: float) -> bytes:
        calls.append(1)
        time.sleep(0.4)
        return clip

    outcomes: dict[str, object] = {}
    leading = threading.Thread(target=lambda: outcomes.setdefault("leader", leader.execute(KEY, synthesise)))
    leading.start()
    time.sleep(0.1)  # the leader holds the flight lock in Redis
    outcomes["follower"] = follower.execute(KEY, synthesise)
    leading.join()
    assert len(calls) == 1
    assert outcomes["leader"].cache == "MISS" and outcomes["follower"].cache == "HIT"  # type: ignore[attr-defined]
    assert outcomes["follower"].value == clip  # type: ignore[attr-defined]


def test_entries_written_the_old_way_are_still_read(tmp_path, prefix, opened):
    old_entry = json.dumps({"v": {"text": "héllo"}, "f": time.time() + 60, "g": "2.0", "c": 0.002},
                           separators=(",", ":"), ensure_ascii=False)
    # Redis: the old store wrote the entry as text through its decoding client.
    text_client = redis.Redis.from_url(MAIN_REDIS_URL, decode_responses=True)
    text_client.set(f"{prefix}gen:*", "2")
    text_client.set(f"{prefix}cache:{KEY}", old_entry, px=60_000)
    text_client.close()
    # Disk: the old store's diskcache, JSONDisk for everything; a generation among its state.
    old_disk = diskcache.Cache(str(tmp_path / "disk"), disk=diskcache.JSONDisk, disk_compress_level=0, timeout=2)
    old_disk.set("gen:*", "2")
    old_disk.set(f"cache:{KEY}", old_entry, expire=60)
    old_disk.close()
    redis_store, disk = RedisStore(MAIN_REDIS_URL, prefix=prefix), DiskStore(tmp_path / "disk")
    opened += [redis_store, disk]
    for store in (redis_store, disk):
        cache = TieredCache(store.name, [MemoryTier(1 << 20), StoreTier(store)], store, default_ttl=60, shared=store)
        entry = cache.lookup(KEY)
        assert entry is not None and (entry.value, entry.tier, entry.cost_usd) == ({"text": "héllo"}, store.name, 0.002)
        assert cache.lookup(KEY).tier == "memory"  # promoted as it was
