"""Lookup latency of each cache tier, hit and miss, measured in one run: memory, disk and Redis.

Run: .venv/bin/python -m bench.cache_tiers   (needs Redis on 127.0.0.1:6379)
"""
from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path

from backend.resilience.cache import TieredCache
from backend.resilience.cache_tiers import MemoryTier, StoreTier
from backend.resilience.store import MemoryStore
from backend.resilience.store_disk import DiskStore
from backend.resilience.store_redis import RedisStore

N = 2000
VALUE = {"errors": [{"type": "grammar", "text": "he go", "correction": "he goes", "explanation": "x" * 200}],
         "feedback": "y" * 600, "strengths": ["a", "b"], "improvement_areas": ["c"], "recommended_tasks": [],
         "cefr_assessment": {"level": "B1", "confidence": 0.8, "rationale": "z" * 200}, "partial": False}


def timings_us(cache: TieredCache, keys: list[str]) -> tuple[float, float]:
    """Median and p99 lookup time in microseconds."""
    samples = []
    for key in keys:
        started = time.perf_counter()
        cache.lookup(key)
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    """Print hit and miss latency per tier, then the ratio of each tier's hit to the memory hit."""
    directory = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    redis = RedisStore("redis://127.0.0.1:6379/0", prefix=prefix)
    disk = DiskStore(directory / "disk")
    tiers = {
        "memory": TieredCache("memory", [MemoryTier(64 << 20)], MemoryStore(), default_ttl=3600),
        "disk": TieredCache("disk", [StoreTier(disk)], disk, default_ttl=3600),
        "redis": TieredCache("redis_only", [StoreTier(redis)], redis, default_ttl=3600),
    }
    keys = [f"analyze:v1:m:{i:064x}" for i in range(N)]
    results = {}
    for name, cache in tiers.items():
        for key in keys:
            cache.store(key, VALUE)
        hit = timings_us(cache, keys)
        miss = timings_us(cache, [k.replace("analyze", "explanation") for k in keys])
        results[name] = (hit, miss)
        print(f"{name:7s} hit  p50 {hit[0]:8.1f} us  p99 {hit[1]:8.1f} us   "
              f"miss p50 {miss[0]:8.1f} us  p99 {miss[1]:8.1f} us")
    redis.delete_prefix("")
    base = results["memory"][0][0]
    print("hit p50 relative to memory: " + ", ".join(f"{n} {r[0][0] / base:.1f}x" for n, r in results.items()))


if __name__ == "__main__":
    main()
