"""A bulkhead per provider: a bounded number of concurrent upstream calls per process, beyond it a fast 503."""
from __future__ import annotations

import threading

from backend.errors import ProviderUnavailable


class Bulkhead:
    """Refuses at once when full, so threads never pile up behind a slow provider."""

    def __init__(self, name: str, limit: int, *, retry_after: float = 1.0):
        self.name = name
        self.limit = limit
        self.retry_after = retry_after
        self._slots = threading.BoundedSemaphore(limit)
        self._taken = 0  # for gauges and tests; the semaphore alone decides
        self._count_lock = threading.Lock()

    def acquire(self) -> None:
        """Take a slot, or raise PROVIDER_UNAVAILABLE with Retry-After without waiting."""
        if not self._slots.acquire(blocking=False):
            raise ProviderUnavailable(f"{self.name} is at its concurrency limit ({self.limit})", provider=self.name,
                                      retry_after=self.retry_after)
        with self._count_lock:
            self._taken += 1

    def release(self) -> None:
        """Give the slot back."""
        with self._count_lock:
            self._taken -= 1
        self._slots.release()

    @property
    def in_use(self) -> int:
        """Slots taken now."""
        return self._taken
