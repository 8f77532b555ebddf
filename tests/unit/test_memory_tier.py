"""The in-process tier: bounded in bytes, least recently used out first, entries expire."""
from __future__ import annotations

import gc
import os
import time

from backend.resilience.cache_tiers import MemoryTier


def rss_bytes() -> int:
    """Resident memory of this process."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_filling_far_past_the_bound_keeps_memory_flat():
    tier = MemoryTier(max_bytes=4 * 1024 * 1024)
    value = b"x" * 10_000
    for i in range(2_000):  # warm up to the bound
        tier.set(f"analyze:v1:m:{i}", value + str(i).encode(), ttl=60)
    gc.collect()
    baseline = rss_bytes()
    for i in range(2_000, 30_000):  # ~280 MB written through a 4 MB tier
        tier.set(f"analyze:v1:m:{i}", value + str(i).encode(), ttl=60)
    gc.collect()
    stats = tier.stats()
    assert stats["bytes"] <= 4 * 1024 * 1024
    assert stats["entries"] < 420
    assert rss_bytes() - baseline < 16 * 1024 * 1024


def test_least_recently_used_goes_first():
    tier = MemoryTier(max_bytes=3 * 1200)
    for key in ("a", "b", "c"):
        tier.set(key, b"v" * 1000, ttl=60)
    assert tier.get("a")  # a is now the most recently used
    tier.set("d", b"v" * 1000, ttl=60)
    assert tier.get("b") is None and tier.get("a") and tier.get("d")


def test_entries_expire():
    tier = MemoryTier(max_bytes=1 << 20)
    tier.set("k", b"v", ttl=0.2)
    assert tier.get("k") == b"v"
    time.sleep(0.25)
    assert tier.get("k") is None


def test_an_entry_larger_than_the_tier_is_not_kept():
    tier = MemoryTier(max_bytes=1000)
    tier.set("big", b"x" * 5000, ttl=60)
    assert tier.get("big") is None and tier.stats()["entries"] == 0
