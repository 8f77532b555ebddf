"""The Redis store: fail-fast timeouts, no client retries, and a 'down until T' switch per process."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from backend.resilience.store import Store, StoreUnavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")
_REFUSING = {"OOM", "READONLY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS"}

# Compare-and-delete / compare-and-expire: a lock is only released or renewed by its owner.
_DELETE_IF_EQUALS = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_EXPIRE_IF_EQUALS = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                     "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0")
_SET_IF_EQUALS = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                  "redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0")
_INCR_WITH_TTL = ("local v = redis.call('incrby', KEYS[1], ARGV[1]) "
                  "if v == tonumber(ARGV[1]) and tonumber(ARGV[2]) > 0 then redis.call('pexpire', KEYS[1], ARGV[2]) end "
                  "return v")


class RedisStore(Store):
    """Keys live under a prefix; an outage costs one quick probe per interval, never a timeout per request."""

    name, scope = "redis", "cluster"

    def __init__(self, url: str, *, prefix: str = "backend-ai:", timeout: float = 0.25,
                 probe_interval: float = 2.0, max_connections: int = 128):
        self.prefix = prefix
        self.probe_interval = probe_interval
        # retry=Retry(NoBackoff(), 0): redis-py 6+ retries 3 times by default; a retry loop is what we must avoid.
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False, health_check_interval=0, max_connections=max_connections,
            decode_responses=True)
        self._down = False
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._delete_if_equals = self.client.register_script(_DELETE_IF_EQUALS)
        self._expire_if_equals = self.client.register_script(_EXPIRE_IF_EQUALS)
        self._incr_with_ttl = self.client.register_script(_INCR_WITH_TTL)
        self._set_if_equals = self.client.register_script(_SET_IF_EQUALS)

    def k(self, key: str) -> str:
        """The Redis key for one of ours."""
        return self.prefix + key

    def available(self) -> bool:
        return not self._down

    def call(self, operation: Callable[[], T]) -> T:
        """Run one Redis operation, or raise StoreUnavailable at once while Redis is known to be down."""
        if self._down:
            self._claim_probe()
        try:
            result = operation()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._mark_down(exc)
            raise StoreUnavailable(str(exc)) from None
        except redis.RedisError as exc:
            # A reachable Redis that refuses writes (OOM under noeviction, a read-only replica after failover,
            # a loading or cluster-down node) is as unusable as a dead one: fall back, probe again later.
            if str(exc).split(" ", 1)[0] in _REFUSING:
                self._mark_down(exc)
            raise StoreUnavailable(f"redis refused the command ({type(exc).__name__})") from None
        if self._down:
            with self._lock:
                if self._down:
                    self._down, self._down_until = False, 0.0
                    logger.warning("redis is reachable again: sharing resumed")
        return result

    def _claim_probe(self) -> None:
        """During an outage let one caller per interval probe; everyone else is refused without waiting."""
        with self._lock:
            now = time.monotonic()
            if now < self._down_until:
                raise StoreUnavailable("redis is down")
            self._down_until = now + self.probe_interval

    def _mark_down(self, exc: Exception) -> None:
        """Skip Redis for probe_interval; log the outage once, not per request."""
        with self._lock:
            self._down_until = time.monotonic() + self.probe_interval
            if not self._down:
                self._down = True
                logger.error("redis unreachable: falling back to local state",
                             extra={"error": type(exc).__name__, "probe_interval_s": self.probe_interval})

    def ping(self) -> bool:
        """Probe Redis (also ends a known outage early when it answers)."""
        try:
            return bool(self.call(self.client.ping))
        except StoreUnavailable:
            return False

    def get_many(self, keys: list[str]) -> list[str | None]:
        return self.call(lambda: self.client.mget([self.k(key) for key in keys]))

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self.call(lambda: self.client.set(self.k(key), value, px=_ms(ttl) if ttl else None))

    def add(self, key: str, value: str, ttl: float) -> bool:
        return bool(self.call(lambda: self.client.set(self.k(key), value, px=_ms(ttl), nx=True)))

    def delete(self, keys: Iterable[str]) -> None:
        names = [self.k(key) for key in keys]
        if names:
            self.call(lambda: self.client.delete(*names))

    def delete_if_equals(self, key: str, value: str) -> bool:
        return bool(self.call(lambda: self._delete_if_equals(keys=[self.k(key)], args=[value])))

    def expire_if_equals(self, key: str, value: str, ttl: float) -> bool:
        return bool(self.call(lambda: self._expire_if_equals(keys=[self.k(key)], args=[value, _ms(ttl)])))

    def set_if_equals(self, key: str, value: str, new_value: str, ttl: float) -> bool:
        return bool(self.call(lambda: self._set_if_equals(keys=[self.k(key)], args=[value, new_value, _ms(ttl)])))

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        return int(self.call(lambda: self._incr_with_ttl(keys=[self.k(key)], args=[amount, _ms(ttl) if ttl else 0])))

    def delete_prefix(self, prefix: str) -> int:
        def scan_and_unlink() -> int:
            removed, batch = 0, []
            for name in self.client.scan_iter(match=_glob_escape(self.k(prefix)) + "*", count=500):
                batch.append(name)
                if len(batch) >= 500:
                    removed += self.client.unlink(*batch)
                    batch = []
            return removed + (self.client.unlink(*batch) if batch else 0)

        return self.call(scan_and_unlink)

    def script(self, source: str) -> Any:
        """Register a Lua script on this client (atomic multi-key transitions)."""
        return self.client.register_script(source)

    def close(self) -> None:
        self.client.close()


def _ms(seconds: float | None) -> int:
    """Seconds to whole milliseconds, at least 1."""
    return max(1, int((seconds or 0) * 1000))


def _glob_escape(text: str) -> str:
    """Escape Redis glob characters so a prefix matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
