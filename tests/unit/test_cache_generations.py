"""Clearing through generations: a process re-reads them only now and then, yet never serves a cleared entry."""
from __future__ import annotations

import time

from backend.resilience.cache import TieredCache
from backend.resilience.cache_tiers import MemoryTier, StoreTier
from backend.resilience.store_disk import DiskStore

KEY = "analyze:v2:m:k"


def two_processes(tmp_path, refresh: float):
    """Two caches with their own memory tiers over one host's disk store, as two workers have."""
    disk = DiskStore(tmp_path / "disk")
    make = lambda: TieredCache("disk", [MemoryTier(1 << 20), StoreTier(disk)], disk, default_ttl=60,  # noqa: E731
                               generation_refresh=refresh)
    return make(), make()


def test_no_process_serves_a_cleared_entry_once_the_clear_returns(tmp_path):
    clearing, other = two_processes(tmp_path, refresh=0.3)
    other.store(KEY, "old")
    assert other.lookup(KEY).value == "old"  # its generation is now remembered for up to 0.3 s
    started = time.monotonic()
    clearing.clear()
    assert time.monotonic() - started >= 0.3  # the clear waited out every process's remembered generation
    assert other.lookup(KEY) is None


def count_generation_reads(cache: TieredCache, lookups: int) -> int:
    reads = []
    original = cache.control.get_many
    cache.control.get_many = lambda keys: reads.append(keys) or original(keys)  # type: ignore[method-assign]
    for _ in range(lookups):
        assert cache.lookup(KEY).value == "v"
    return len(reads)


def test_generations_are_read_at_most_once_per_refresh(tmp_path):
    remembering, _ = two_processes(tmp_path / "a", refresh=60)
    remembering.store(KEY, "v")
    assert count_generation_reads(remembering, 50) == 0
    every_time, _ = two_processes(tmp_path / "b", refresh=0)
    every_time.store(KEY, "v")
    assert count_generation_reads(every_time, 50) == 50
