"""Cache tiers: a bounded in-process LRU, and shared tiers over a Store (a host's disk, Redis)."""
from __future__ import annotations

import threading
import time

from cachetools import LRUCache

from backend.resilience.store import Store


class MemoryTier:
    """This process's tier: LRU, bounded in bytes of encoded entries, with per-entry expiry, thread-safe."""

    name = "memory"
    shared = False

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        # Each item is (encoded entry, expires at); its size is the entry's length in bytes plus a fixed overhead.
        self._lru: LRUCache[str, tuple[bytes, float]] = LRUCache(maxsize=max_bytes, getsizeof=_entry_size)
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._lru.get(key)
            if item is None:
                return None
            if item[1] <= time.monotonic():
                del self._lru[key]
                return None
            return item[0]

    def set(self, key: str, raw: bytes, ttl: float) -> None:
        if _entry_size((raw, 0.0)) > self.max_bytes:
            return  # larger than the whole tier: not worth evicting everything for
        with self._lock:
            self._lru[key] = (raw, time.monotonic() + ttl)

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [k for k in self._lru if k.startswith(prefix)]
            for key in doomed:
                del self._lru[key]
            return len(doomed)

    def stats(self) -> dict[str, int]:
        """Entries and bytes held."""
        with self._lock:
            return {"entries": len(self._lru), "bytes": int(self._lru.currsize), "max_bytes": self.max_bytes}


def _entry_size(item: tuple[bytes, float]) -> int:
    """Approximate memory of one entry: its bytes plus dict/tuple overhead."""
    return len(item[0]) + 200


class StoreTier:
    """A shared tier (disk or Redis) storing entries as bytes, as they are, under a `cache:` key prefix."""

    shared = True

    def __init__(self, store: Store, prefix: str = "cache:"):
        self.store = store
        self.name = store.name
        self.prefix = prefix

    def get(self, key: str) -> bytes | None:
        return self.store.get_bytes(self.prefix + key)

    def prefetch(self, key: str) -> bool:
        """Ask the store to read the entry ahead, in the round trip of the request's rate limits (Redis only); False
        when it cannot."""
        prefetch = getattr(self.store, "prefetch_bytes", None)
        if prefetch is None:
            return False
        prefetch(self.prefix + key)
        return True

    def forget_prefetched(self) -> None:
        forget = getattr(self.store, "forget_prefetched", None)
        if forget is not None:
            forget()

    def set(self, key: str, raw: bytes, ttl: float) -> None:
        # A store short of room (Redis near its maxmemory) keeps it for control state: the entry stays in the
        # faster tiers instead of pushing locks, breakers and rate limits out of Redis.
        if self.store.has_room():
            self.store.set_bytes(self.prefix + key, raw, ttl)

    def delete_prefix(self, prefix: str) -> int:
        return self.store.delete_prefix(self.prefix + prefix)

    def stats(self) -> dict[str, object]:
        """Whether the tier answers now."""
        return {"available": self.store.available()}
