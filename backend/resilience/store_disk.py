"""The disk store: diskcache (SQLite) in a private directory, shared by the workers of one host, JSON only."""
from __future__ import annotations

import functools
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import diskcache

from backend.resilience.store import Store, StoreUnavailable

T = TypeVar("T")


def private_directory(directory: Path) -> Path:
    """Create the directory readable by this user only (and make it so if it existed)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    return directory


def open_disk_cache(directory: Path, *, size_limit: int | None = 1 << 30) -> diskcache.Cache:
    """Open (creating with mode 0700) a diskcache that serializes with JSON, never pickle; no size limit = no
    eviction (for state that must not be evicted by cache entries)."""
    private_directory(directory)
    bounds: dict[str, Any] = ({"size_limit": size_limit, "eviction_policy": "least-recently-stored"}
                              if size_limit else {"eviction_policy": "none"})
    # JSONDisk stores keys and values as JSON: nothing read back from disk is ever unpickled.
    # A short SQLite timeout: a contended disk must not hold a request for diskcache's default 60 s.
    return diskcache.Cache(str(directory), disk=diskcache.JSONDisk, disk_compress_level=0, timeout=2, **bounds)


def _unavailable_on_disk_errors(method: Callable[..., T]) -> Callable[..., T]:
    """A locked, full or broken disk makes the store unavailable (callers fall back), never a 500."""

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except (diskcache.Timeout, sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"disk store failed ({type(exc).__name__})") from None

    return guarded


class DiskStore(Store):
    """Strings, counters and locks in a diskcache shared by every process of the host."""

    name, scope = "disk", "host"

    def __init__(self, directory: Path, *, size_limit: int | None = 1 << 30):
        self.cache = open_disk_cache(directory, size_limit=size_limit)

    @_unavailable_on_disk_errors
    def get_many(self, keys: list[str]) -> list[str | None]:
        return [self.cache.get(key) for key in keys]

    @_unavailable_on_disk_errors
    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self.cache.set(key, value, expire=ttl)

    @_unavailable_on_disk_errors
    def add(self, key: str, value: str, ttl: float) -> bool:
        return bool(self.cache.add(key, value, expire=ttl))

    @_unavailable_on_disk_errors
    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.cache.delete(key)

    @_unavailable_on_disk_errors
    def delete_if_equals(self, key: str, value: str) -> bool:
        with self.cache.transact():
            if self.cache.get(key) == value:
                return bool(self.cache.delete(key))
        return False

    @_unavailable_on_disk_errors
    def expire_if_equals(self, key: str, value: str, ttl: float) -> bool:
        with self.cache.transact():
            if self.cache.get(key) == value:
                return bool(self.cache.touch(key, expire=ttl))
        return False

    @_unavailable_on_disk_errors
    def set_if_equals(self, key: str, value: str, new_value: str, ttl: float) -> bool:
        with self.cache.transact():
            if self.cache.get(key) == value:
                return bool(self.cache.set(key, new_value, expire=ttl))
        return False

    @_unavailable_on_disk_errors
    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        with self.cache.transact():
            current = self.cache.get(key)
            value = int(current or 0) + amount
            if current is None:
                self.cache.set(key, str(value), expire=ttl)
            else:
                # Keep the key's remaining lifetime: a windowed counter must not live forever.
                _, expire_time = self.cache.get(key, expire_time=True)
                remaining = None if expire_time is None else max(0.001, expire_time - time.time())
                self.cache.set(key, str(value), expire=remaining)
            return value

    @_unavailable_on_disk_errors
    def update(self, key: str, change: Callable[[str | None], tuple[str | None, T]], ttl: float | None = None) -> T:
        with self.cache.transact():
            value, result = change(self.cache.get(key))
            if value is not None:
                self.cache.set(key, value, expire=ttl)
            return result

    @_unavailable_on_disk_errors
    def delete_prefix(self, prefix: str) -> int:
        removed = 0
        for key in list(self.cache.iterkeys()):
            if isinstance(key, str) and key.startswith(prefix) and self.cache.delete(key):
                removed += 1
        return removed

    def close(self) -> None:
        self.cache.close()

