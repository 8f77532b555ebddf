"""A remote store's 'down until T' switch (Redis, the host's disk): an outage costs one probe per interval, not a
timeout per request."""
from __future__ import annotations

import logging
import threading
import time

from backend.resilience.store import StoreUnavailable

logger = logging.getLogger(__name__)


class Outage:
    """A store's 'down until T' switch: while down, one caller per interval probes, the rest are refused at once.

    The outage is logged once when it starts and once when it ends, not per request."""

    def __init__(self, store: str, probe_interval: float, *, down_message: str, up_message: str):
        self.store = store
        self.probe_interval = probe_interval
        self.down_message, self.up_message = down_message, up_message
        self.down = False
        self._down_until = 0.0
        self._lock = threading.Lock()

    def claim_probe(self) -> None:
        """Return when this caller may try the store (up, or its turn to probe); else raise StoreUnavailable."""
        if not self.down:
            return
        with self._lock:
            now = time.monotonic()
            if now < self._down_until:
                raise StoreUnavailable(f"{self.store} is down", store=self.store)
            self._down_until = now + self.probe_interval

    def failed(self, exc: BaseException) -> None:
        """Skip the store for probe_interval."""
        with self._lock:
            self._down_until = time.monotonic() + self.probe_interval
            if not self.down:
                self.down = True
                logger.error(self.down_message, extra={"error": type(exc).__name__,
                                                       "probe_interval_s": self.probe_interval})

    def recovered(self) -> None:
        """The store answered: use it again."""
        if self.down:
            with self._lock:
                if self.down:
                    self.down, self._down_until = False, 0.0
                    logger.warning(self.up_message)
