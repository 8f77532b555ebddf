"""Shared state behind one small interface: process memory, a host's disk, or Redis, with failover."""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")


class StoreUnavailable(Exception):
    """The store cannot be reached now; callers fall back instead of failing the request."""

    def __init__(self, message: str = "", *, store: str = "store"):
        super().__init__(message)
        self.store = store  # which store failed: redis, disk (what an operator is told, never its address)

    @property
    def summary(self) -> str:
        """Which store failed, in words for operators."""
        return _SUMMARIES.get(self.store, "The shared store is unavailable")


_SUMMARIES = {"redis": "Redis is unreachable", "disk": "The cache disk is failing (full or unwritable)"}


class Store(ABC):
    """Strings under keys with TTLs, atomic counters and set-if-absent (the building block of locks); cache entries
    as bytes (get_bytes, set_bytes)."""

    name = "store"
    scope = "process"  # who sees the same data: process, host or cluster

    @abstractmethod
    def get_many(self, keys: list[str]) -> list[str | None]:
        """Values of the keys (None where absent or expired), in one round trip."""

    @abstractmethod
    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        """Store a value, expiring after ttl seconds when given."""

    @abstractmethod
    def add(self, key: str, value: str, ttl: float) -> bool:
        """Store only if absent; True when this call stored it."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Remove keys."""

    @abstractmethod
    def delete_if_equals(self, key: str, value: str) -> bool:
        """Remove the key only while it still holds value (releasing a lock we own)."""

    @abstractmethod
    def expire_if_equals(self, key: str, value: str, ttl: float) -> bool:
        """Extend the key's TTL only while it still holds value (renewing a lock we own)."""

    @abstractmethod
    def set_if_equals(self, key: str, value: str, new_value: str, ttl: float) -> bool:
        """Replace the value (living ttl seconds) only while the key still holds value (handing a lock on)."""

    @abstractmethod
    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomically add to an integer counter (created at 0); ttl applies when it is created."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with prefix; return how many."""

    def get(self, key: str) -> str | None:
        """The value of one key."""
        return self.get_many([key])[0]

    def update(self, key: str, change: Callable[[str | None], tuple[str | None, T]], ttl: float | None = None) -> T:
        """Atomically replace the key's value by change(old)[0] (None leaves it; a new value lives ttl seconds,
        forever without one) and return change(old)[1]."""
        raise NotImplementedError(f"{self.name} store has no atomic update")

    def get_bytes(self, key: str) -> bytes | None:
        """A value written by set_bytes, as it was written; one written as text comes back UTF-8 encoded."""
        raise NotImplementedError(f"{self.name} store keeps no bytes")

    def set_bytes(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store bytes as they are (no text encoding on the way), expiring after ttl seconds when given."""
        raise NotImplementedError(f"{self.name} store keeps no bytes")

    def available(self) -> bool:
        """Whether the store answers now (cheap; no network when known to be down)."""
        return True

    def probe(self) -> bool:
        """Whether the store takes writes now, probing it at most once per interval (for health reports)."""
        return self.available()

    def has_room(self) -> bool:
        """Whether an evictable entry (a cached answer) may be written now; control state is always written."""
        return True

    def close(self) -> None:  # noqa: B027  (a no-op by default: only stores holding connections override it)
        """Release connections."""


class MemoryStore(Store):
    """A dict with expiry, guarded by a lock: state seen by this process only."""

    name, scope = "memory", "process"

    SWEEP_EVERY = 1000  # writes between sweeps of expired keys nobody reads again (e.g. one per client address)

    def __init__(self) -> None:
        self._data: dict[str, tuple[str | bytes, float | None]] = {}
        self._lock = threading.Lock()
        self._writes = 0

    def _store(self, key: str, value: str | bytes, expires: float | None) -> None:
        """Write under the lock, sweeping expired keys now and then so the dict cannot grow without bound."""
        self._data[key] = (value, expires)
        self._writes += 1
        if self._writes % self.SWEEP_EVERY == 0:
            now = time.monotonic()
            for stale in [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]:
                del self._data[stale]

    def _live(self, key: str, now: float) -> str | bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= now:
            del self._data[key]
            return None
        return item[0]

    def get_many(self, keys: list[str]) -> list[str | None]:
        now = time.monotonic()
        with self._lock:
            return [self._live(k, now) for k in keys]  # type: ignore[misc]  # bytes only under set_bytes keys

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        with self._lock:
            self._store(key, value, time.monotonic() + ttl if ttl else None)

    def get_bytes(self, key: str) -> bytes | None:
        with self._lock:
            value = self._live(key, time.monotonic())
        return value.encode() if isinstance(value, str) else value

    def set_bytes(self, key: str, value: bytes, ttl: float | None = None) -> None:
        value = require_bytes(value, self.name)
        with self._lock:
            self._store(key, value, time.monotonic() + ttl if ttl else None)

    def add(self, key: str, value: str, ttl: float) -> bool:
        with self._lock:
            if self._live(key, time.monotonic()) is not None:
                return False
            self._store(key, value, time.monotonic() + ttl)
            return True

    def delete(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def delete_if_equals(self, key: str, value: str) -> bool:
        with self._lock:
            if self._live(key, time.monotonic()) == value:
                del self._data[key]
                return True
            return False

    def expire_if_equals(self, key: str, value: str, ttl: float) -> bool:
        return self.set_if_equals(key, value, value, ttl)

    def set_if_equals(self, key: str, value: str, new_value: str, ttl: float) -> bool:
        with self._lock:
            if self._live(key, time.monotonic()) == value:
                self._data[key] = (new_value, time.monotonic() + ttl)
                return True
            return False

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        with self._lock:
            now = time.monotonic()
            current = self._live(key, now)
            expires = self._data[key][1] if current is not None else (now + ttl if ttl else None)
            value = int(current or 0) + amount
            self._store(key, str(value), expires)
            return value

    def update(self, key: str, change: Callable[[str | None], tuple[str | None, T]], ttl: float | None = None) -> T:
        with self._lock:
            now = time.monotonic()
            value, result = change(self._live(key, now))  # type: ignore[arg-type]
            if value is not None:
                self._store(key, value, now + ttl if ttl else None)
            return result

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [k for k in self._data if k.startswith(prefix)]
            for key in doomed:
                del self._data[key]
            return len(doomed)


class FailoverStore(Store):
    """Use the primary (Redis) while it answers, the fallback otherwise; nobody sees the switch as an error."""

    def __init__(self, primary: Store, fallback: Store):
        self.primary, self.fallback = primary, fallback
        self.scope = primary.scope

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.primary.name if self.primary.available() else self.fallback.name

    def _run(self, operation: str, *args):
        try:
            return getattr(self.primary, operation)(*args)
        except StoreUnavailable:
            return getattr(self.fallback, operation)(*args)

    def get_many(self, keys):
        return self._run("get_many", keys)

    def set(self, key, value, ttl=None):
        return self._run("set", key, value, ttl)

    def add(self, key, value, ttl):
        return self._run("add", key, value, ttl)

    def delete(self, keys):
        return self._run("delete", list(keys))

    def delete_if_equals(self, key, value):
        return self._run("delete_if_equals", key, value)

    def expire_if_equals(self, key, value, ttl):
        return self._run("expire_if_equals", key, value, ttl)

    def set_if_equals(self, key, value, new_value, ttl):
        return self._run("set_if_equals", key, value, new_value, ttl)

    def incr(self, key, amount=1, ttl=None):
        return self._run("incr", key, amount, ttl)

    def delete_prefix(self, prefix):
        return self._run("delete_prefix", prefix)

    def update(self, key, change, ttl=None):
        return self._run("update", key, change, ttl)

    def get_bytes(self, key):
        return self._run("get_bytes", key)

    def set_bytes(self, key, value, ttl=None):
        return self._run("set_bytes", key, value, ttl)

    def available(self) -> bool:
        return self.primary.available()

    def probe(self) -> bool:
        return self.primary.probe()

    def close(self) -> None:  # noqa: B027  (a no-op by default: only stores holding connections override it)
        self.primary.close()
        self.fallback.close()


def require_bytes(value: object, store: str) -> bytes:
    """Refuse, loudly, anything but bytes where bytes are kept as they are: never a silent str() or pickle."""
    if type(value) is not bytes:
        raise TypeError(f"{store} store: set_bytes takes bytes, not {type(value).__name__}")
    return value
