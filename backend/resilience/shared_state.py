"""Assemble the stores and cache tiers of a CACHE_MODE: who shares what with whom."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from backend.resilience.cache import TieredCache
from backend.resilience.cache_tiers import MemoryTier, StoreTier
from backend.resilience.singleflight import SingleFlight
from backend.resilience.store import FailoverStore, MemoryStore, Store
from backend.resilience.store_disk import (
    open_disk_store,
    private_directory,
    unopened_disk,
)
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
    disk: Store | None  # the disk tier (cached answers), when the mode has one
    disk_state: Store | None = None  # the host's control state on disk, when the mode has one

    def health(self) -> dict[str, Any]:
        """Mode, the backend serving now, whether Redis answers (probing it at most once per interval) and whether
        the cache disk takes writes (likewise)."""
        connected = self.redis.ping() if self.redis is not None else True
        disk_ok = self.disk_ok()
        backend = ("redis" if self.redis is not None and connected
                   else "disk" if disk_ok else "memory")
        return {"mode": self.mode, "backend": backend, "connected": connected,
                "fallback_active": self.redis is not None and not connected,
                "redis_configured": self.redis is not None,
                "disk": None if disk_ok is None else ("ok" if disk_ok else "failing")}

    def disk_ok(self) -> bool | None:
        """Whether both disk stores take writes (None without a disk)."""
        stores = [store for store in (self.disk, self.disk_state) if store is not None]
        return all(store.probe() for store in stores) if stores else None

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


def _open_disk(settings: Settings) -> tuple[Store, Store]:
    """The disk tier and the host's state store; where the disk cannot be used, stores that refuse (and say why)."""
    try:
        private_directory(settings.cache_dir)
    except OSError as exc:
        unusable = unopened_disk(settings.cache_dir, exc)
        return unusable, unusable
    # Two directories: cached answers are evicted by size; locks, counters, generations and breaker state are not.
    return (open_disk_store(settings.cache_dir / "data", size_limit=settings.cache_disk_max_bytes),
            open_disk_store(settings.cache_dir / "state", size_limit=None))


def build_shared_state(settings: Settings) -> SharedState:
    """memory: this process only; disk: the host's workers; redis: every instance, disk when Redis is down;
    redis_only: every instance, this process's memory when Redis is down (no disk, as in Kubernetes).

    The disk is optional: while it cannot be opened or written (full, unwritable), this process's memory stands in
    for it and health says degraded; the service never refuses to start for it."""
    mode = settings.effective_cache_mode
    redis = (RedisStore(settings.redis_url.get_secret_value(), prefix=settings.redis_key_prefix)
             if mode in ("redis", "redis_only") else None)
    disk, disk_state = _open_disk(settings) if mode in ("disk", "redis") else (None, None)
    local: Store = FailoverStore(disk_state, MemoryStore()) if disk_state is not None else MemoryStore()
    memory_tier = MemoryTier(settings.cache_memory_max_bytes)
    tiers: list = [memory_tier] + ([StoreTier(disk)] if disk is not None else [])
    if redis is not None:
        control: Store = FailoverStore(redis, local)
        tiers.append(StoreTier(redis))
    else:
        control = local
    # A clear must reach every process sharing the cache, or be refused: Redis when configured, else the host's disk.
    cache = TieredCache(mode, tiers, control, default_ttl=settings.cache_ttl_seconds,
                        namespace_ttls=settings.namespace_ttls, stale_grace=settings.cache_stale_grace_seconds,
                        shared=redis or disk_state, max_value_bytes=settings.cache_max_value_bytes)
    # In memory mode there is nobody to share a flight with beyond this process.
    flights = SingleFlight(None if mode == "memory" else control)
    return SharedState(mode, control, local, cache, flights, redis, disk, disk_state)
