"""The disk store: diskcache (SQLite) in a private directory, shared by the workers of one host; text as JSON,
cache entries as raw bytes, never pickle."""
from __future__ import annotations

import functools
import logging
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import diskcache

from backend.resilience.outage import Outage
from backend.resilience.store import Store, StoreUnavailable, require_bytes

logger = logging.getLogger(__name__)
T = TypeVar("T")


def private_directory(directory: Path) -> Path:
    """Create the directory readable by this user only (and make it so if it existed)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    return directory


# diskcache tags each row with how its value is kept (1 raw, 2 binary file, 3 text file, 4 pickle) and hands the
# tag back to the Disk, and to nothing else, on every read. Bytes kept as they are get tags of their own: JSONDisk
# wrote its JSON under 1 and 2 too, and those rows (text values, entries from before binary values) must still be
# told apart from raw bytes and read as JSON.
_BYTES_IN_ROW, _BYTES_IN_FILE = 101, 102
_BYTES_TAG = {diskcache.core.MODE_RAW: _BYTES_IN_ROW, diskcache.core.MODE_BINARY: _BYTES_IN_FILE}
_BYTES_UNTAG = {tag: mode for mode, tag in _BYTES_TAG.items()}
_JSON_MODES = (diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY)


class JSONOrBytesDisk(diskcache.JSONDisk):
    """Keys and text as JSONDisk keeps them; bytes as they are (in the row, or a file past min_file_size); a row that
    would need unpickling (a key or a value) is refused, never loaded."""

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise TypeError("refusing a pickled key in the cache disk")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> tuple[int, int, str | None, Any]:
        if read:
            raise TypeError("the cache disk takes values, not files")
        if type(value) is bytes:
            size, mode, filename, db_value = diskcache.Disk.store(self, value, False, key=key)
            return size, _BYTES_TAG[mode], filename, db_value
        return super().store(value, read, key=key)  # JSON, as before: json.dumps refuses what it cannot write

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode in _BYTES_UNTAG:
            return diskcache.Disk.fetch(self, _BYTES_UNTAG[mode], filename, value, read)
        if mode not in _JSON_MODES:
            raise TypeError(f"refusing a cache disk row kept in mode {mode} (pickle or unknown)")
        return super().fetch(mode, filename, value, read)


def open_disk_cache(directory: Path, *, size_limit: int | None = 1 << 30) -> diskcache.Cache:
    """Open (creating with mode 0700) a diskcache that keeps text as JSON and bytes as they are, never pickle; no
    size limit = no eviction (for state that must not be evicted by cache entries)."""
    private_directory(directory)
    bounds: dict[str, Any] = ({"size_limit": size_limit, "eviction_policy": "least-recently-stored"}
                              if size_limit else {"eviction_policy": "none"})
    # A short SQLite timeout: a contended disk must not hold a request for diskcache's default 60 s.
    return diskcache.Cache(str(directory), disk=JSONOrBytesDisk, disk_compress_level=0, timeout=2, **bounds)


_DISK_ERRORS = (diskcache.Timeout, sqlite3.Error, OSError)


def open_disk_store(directory: Path, *, size_limit: int | None = 1 << 30) -> Store:
    """The disk store, or, when it cannot be opened (a full disk, a file in the way, no permission), a store that
    refuses every operation so callers fall back to memory: the disk tier is optional, never a reason not to start."""
    try:
        return DiskStore(directory, size_limit=size_limit)
    except _DISK_ERRORS as exc:
        return unopened_disk(directory, exc)


def unopened_disk(directory: Path, exc: BaseException) -> UnopenedDiskStore:
    """Log why the disk cannot be used, and return the store standing in for it."""
    logger.error("cache disk unusable: falling back to memory (restart once it is fixed)",
                 extra={"directory": str(directory), "error": type(exc).__name__, "detail": str(exc)})
    return UnopenedDiskStore(f"{type(exc).__name__}: {exc}")


def _unavailable_on_disk_errors(method: Callable[..., T]) -> Callable[..., T]:
    """A locked, full or broken disk makes the store unavailable (callers fall back), never a 500; after a failure
    the store is skipped for a probe interval, and comes back once it takes a write again."""

    @functools.wraps(method)
    def guarded(self: DiskStore, *args: Any, **kwargs: Any) -> T:
        if self.outage.down:
            self.outage.claim_probe()
            self._write_probe()
        try:
            return method(self, *args, **kwargs)
        except _DISK_ERRORS as exc:
            self.outage.failed(exc)
            raise StoreUnavailable(f"disk store failed ({type(exc).__name__})", store="disk") from None

    return guarded


class DiskStore(Store):
    """Strings, counters and locks in a diskcache shared by every process of the host."""

    name, scope = "disk", "host"

    def __init__(self, directory: Path, *, size_limit: int | None = 1 << 30, probe_interval: float = 2.0):
        self.cache = open_disk_cache(directory, size_limit=size_limit)
        self.outage = Outage("disk", probe_interval, down_message="cache disk failing: falling back to memory",
                             up_message="cache disk takes writes again")
        self._probed = 0.0  # monotonic time of the last health probe

    def available(self) -> bool:
        return not self.outage.down

    def probe(self) -> bool:
        """Write a new entry (what a full disk refuses; reads and in-place updates may still succeed) at most once
        per probe interval."""
        if not self.outage.down and time.monotonic() - self._probed < self.outage.probe_interval:
            return True
        self._probed = time.monotonic()
        try:
            self.outage.claim_probe()  # while down: refused unless it is this caller's turn
            self._write_probe()
        except StoreUnavailable:
            return False
        return True

    def _write_probe(self) -> None:
        """Insert and remove a fresh key: the disk is back (or still fine) when this works."""
        key = f"probe:{uuid.uuid4().hex}"
        try:
            self.cache.set(key, "1", expire=60)
            self.cache.delete(key)
        except _DISK_ERRORS as exc:
            self.outage.failed(exc)
            raise StoreUnavailable(f"disk store failed ({type(exc).__name__})", store="disk") from None
        self.outage.recovered()

    @_unavailable_on_disk_errors
    def get_many(self, keys: list[str]) -> list[str | None]:
        return [self.cache.get(key) for key in keys]

    @_unavailable_on_disk_errors
    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self.cache.set(key, value, expire=ttl)

    @_unavailable_on_disk_errors
    def get_bytes(self, key: str) -> bytes | None:
        value = self.cache.get(key)
        if isinstance(value, str):
            return value.encode()  # written as text (an entry from before binary values)
        return value if isinstance(value, bytes) else None

    @_unavailable_on_disk_errors
    def set_bytes(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self.cache.set(key, require_bytes(value, self.name), expire=ttl)

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


class UnopenedDiskStore(Store):
    """The disk store that could not be opened: every operation is refused, so callers use their fallback."""

    name, scope = "disk", "host"

    def __init__(self, reason: str):
        self.reason = reason

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable(f"the cache disk could not be opened ({self.reason})", store="disk")

    get_many = set = add = delete = delete_if_equals = expire_if_equals = set_if_equals = incr = _refuse
    update = delete_prefix = get_bytes = set_bytes = _refuse

    def available(self) -> bool:
        return False
