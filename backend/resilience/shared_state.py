"""Assemble the stores and cache tiers of a CACHE_MODE: who shares what with whom."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from backend.resilience.cache import TieredCache
from backend.resilience.cache_tiers import MemoryTier, StoreTier
from backend.resilience.singleflight import SingleFlight
from backend.resilience.store import FailoverStore, MemoryStore, Store
from backend.resilience.store_disk import DiskStore, private_directory
from backend.resilience.store_redis import RedisStore
from backend.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class SharedState:
    """The control store (locks, counters, generations), the cache and single-flight of one process."""

    mode: str
    control: Store
    local: Store  # this host's (or process's) store: where shared state lives when Redis cannot be reached
    cache: TieredCache
    flights: SingleFlight
    redis: RedisStore | None
    disk: DiskStore | None

    def health(self) -> dict[str, Any]:
        """Mode, the backend serving now, and whether Redis answers (probing it at most once per interval)."""
        connected = self.redis.ping() if self.redis is not None else True
        backend = "redis" if self.redis is not None and connected else ("disk" if self.disk else "memory")
        return {"mode": self.mode, "backend": backend, "connected": connected,
                "fallback_active": self.redis is not None and not connected,
                "redis_configured": self.redis is not None}

    def local_store_answers(self) -> bool:
        """Whether this host's (or process's) store can be read: the last line of defence for shared state."""
        try:
            self.local.get("ready-probe")
            return True
        except Exception:
            logger.exception("local store unreadable")
            return False

    def stats(self) -> dict[str, Any]:
        """The cache's statistics with the connection state of its backends."""
        return {**self.cache.stats(), **self.health()}

    def close(self) -> None:
        """Close connections and files."""
        for store in (self.redis, self.disk, self.local):
            if store is not None:
                store.close()


def build_shared_state(settings: Settings) -> SharedState:
    """memory: this process only; disk: the host's workers; redis: every instance, disk when Redis is down;
    redis_only: every instance, this process's memory when Redis is down (no disk, as in Kubernetes)."""
    mode = settings.effective_cache_mode
    redis = (RedisStore(settings.redis_url.get_secret_value(), prefix=settings.redis_key_prefix)
             if mode in ("redis", "redis_only") else None)
    on_disk = mode in ("disk", "redis")
    if on_disk:
        private_directory(settings.cache_dir)
    # Two directories: cached answers are evicted by size; locks, counters, generations and breaker state are not.
    disk = DiskStore(settings.cache_dir / "data", size_limit=settings.cache_disk_max_bytes) if on_disk else None
    local: Store = DiskStore(settings.cache_dir / "state", size_limit=None) if on_disk else MemoryStore()
    memory_tier = MemoryTier(settings.cache_memory_max_bytes)
    tiers: list = [memory_tier] + ([StoreTier(disk)] if disk is not None else [])
    if redis is not None:
        control: Store = FailoverStore(redis, local)
        tiers.append(StoreTier(redis))
    else:
        control = local
    cache = TieredCache(mode, tiers, control, default_ttl=settings.cache_ttl_seconds,
                        namespace_ttls=settings.namespace_ttls, stale_grace=settings.cache_stale_grace_seconds,
                        shared=redis)
    # In memory mode there is nobody to share a flight with beyond this process.
    flights = SingleFlight(None if mode == "memory" else control)
    return SharedState(mode, control, local, cache, flights, redis, disk)
