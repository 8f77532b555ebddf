"""The Redis store: fail-fast timeouts, no client retries, and a 'down until T' switch per process."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, TypeVar

import redis

from backend.resilience.outage import Outage
from backend.resilience.redis_batch import Batches, Write, run_failed, run_replied, script_write, settle_replies
from backend.resilience.redis_connect import close_client, fail_fast, redis_client
from backend.resilience.redis_prefetch import Prefetches, RidingScript
from backend.resilience.store import Store, StoreUnavailable, require_bytes

logger = logging.getLogger(__name__)
T = TypeVar("T")
# A reachable Redis that refuses every write (a read-only replica after a failover, a cluster or master that is
# down, a script holding the server) is as unusable as a dead one. redis-py strips the error code of the replies it
# knows (READONLY, CLUSTERDOWN, MASTERDOWN, TRYAGAIN) and raises a class per code; the others keep their prefix.
_REFUSING_CLASSES = (redis.exceptions.ReadOnlyError, redis.exceptions.ClusterDownError,
                     redis.exceptions.TryAgainError)
_REFUSING_PREFIXES = {"READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS"}
# Redis's used memory, as a share of its maxmemory, past which no more cache entries are written to it: the rest is
# kept for control state (breakers, locks, generations, rate limits), which must never be refused for lack of room.
CACHE_MEMORY_SHARE = 0.8

# Compare-and-delete / compare-and-expire: a lock is only released or renewed by its owner.
_DELETE_IF_EQUALS = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_EXPIRE_IF_EQUALS = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                     "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0")
_SET_IF_EQUALS = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                  "redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0")
_INCR_WITH_TTL = ("local v = redis.call('incrby', KEYS[1], ARGV[1]) "
                  "if v == tonumber(ARGV[1]) and tonumber(ARGV[2]) > 0 then "
                  "redis.call('pexpire', KEYS[1], ARGV[2]) end return v")


class RedisStore(Store):
    """Keys live under a prefix; an outage costs one quick probe per interval, never a timeout per request."""

    name, scope = "redis", "cluster"

    def __init__(self, url: str, *, prefix: str = "backend-ai:", timeout: float = 0.25,
                 probe_interval: float = 2.0, max_connections: int = 128,
                 cache_memory_share: float = CACHE_MEMORY_SHARE, memory_check_interval: float = 1.0):
        self.prefix = prefix
        self.probe_interval = probe_interval
        # A plain URL or Sentinel (backend/resilience/redis_connect.py): through a failover, commands to the lost
        # primary fail fast like any outage, and the probe after it connects to the primary the sentinels name.
        options: dict[str, Any] = {**fail_fast(timeout), "max_connections": max_connections}
        self.client = redis_client(url, decode_responses=True, **options)
        # Cache entries are bytes (synthesised audio among them): a second pool whose replies are not decoded, as
        # fail-fast as the first and behind the same outage switch (every call goes through self.call).
        self.binary = redis_client(url, decode_responses=False, **options)
        self.outage = Outage("redis", probe_interval, down_message="redis unreachable: falling back to local state",
                             up_message="redis is reachable again: sharing resumed")
        self.cache_memory_share = cache_memory_share
        self.memory_check_interval = memory_check_interval
        self._room = (True, 0.0)  # (room for cache entries, monotonic time of the check)
        self._room_lock = threading.Lock()
        self._unbounded_logged = False
        self._prefetches = Prefetches()
        self._delete_if_equals = self.client.register_script(_DELETE_IF_EQUALS)
        self._expire_if_equals = self.client.register_script(_EXPIRE_IF_EQUALS)
        self._incr_with_ttl = self.client.register_script(_INCR_WITH_TTL)
        self._set_if_equals = self.client.register_script(_SET_IF_EQUALS)
        self._batches = Batches()

    def k(self, key: str) -> str:
        """The Redis key for one of ours."""
        return self.prefix + key

    def available(self) -> bool:
        return not self.outage.down

    def call(self, operation: Callable[[], T]) -> T:
        """Run one Redis operation, or raise StoreUnavailable at once while Redis is known to be down. Writes this
        thread queued (``deferring``) go first, so that Redis sees the thread's commands in order."""
        queued = self._batches.take()
        if queued:
            self._flush(queued)
        return self._call(operation)

    def _call(self, operation: Callable[[], T]) -> T:
        self.outage.claim_probe()
        try:
            result = operation()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self.outage.failed(exc)
            raise StoreUnavailable(str(exc), store="redis") from None
        except redis.RedisError as exc:
            self._refuses_writes(exc)
            # Anything else refuses this command only. An OOM under noeviction in particular: reads, deletes and
            # writes that fit still work, so one refused write must not move every worker onto local state.
            raise StoreUnavailable(f"redis refused the command ({type(exc).__name__})", store="redis") from None
        self.outage.recovered()
        return result

    def _refuses_writes(self, exc: BaseException) -> bool:
        """Whether an error means this Redis takes no writes at all (then it is treated as down)."""
        if isinstance(exc, _REFUSING_CLASSES) or str(exc).split(" ", 1)[0] in _REFUSING_PREFIXES:
            self.outage.failed(exc)
            return True
        return False

    # -- writes nobody waits for (backend/resilience/redis_batch.py) -----------------------------------------------

    @contextmanager
    def deferring(self) -> Iterator[None]:
        """Queue this thread's writes sent with ``send`` (and set_bytes, set_if_equals) until the block ends, then
        send them in one pipeline. Nested blocks belong to the outermost."""
        if not self._batches.open():
            yield
            return
        try:
            yield
        finally:
            queued = self._batches.close()
            if queued:
                self._flush(queued)

    def send(self, issue: Callable[[Any], Any], *, replied: Callable[[Any], object] | None = None,
             failed: Callable[[], object] | None = None) -> None:
        """A write whose reply the caller does not wait for: queued while a ``deferring`` block is open on this
        thread, else sent now. ``issue`` gets a client or a pipeline (redis_batch.script_write for scripts)."""
        write = Write(issue, replied, failed)
        if not self._queue(write):
            self._send_now(write)

    def _queue(self, write: Write) -> bool:
        """Queue a write on this thread's open batch; False (send it now) without one, or while Redis is known down:
        tried now, the write fails at once and its caller falls back (a flight lock taken in the local store is
        handed on there, not queued for a Redis that is down)."""
        return self.available() and self._batches.queue(write)

    def _send_now(self, write: Write) -> None:
        try:
            reply = self.call(lambda: write.issue(self.client))
        except StoreUnavailable:
            run_failed(write)
            return
        run_replied(write, reply)

    def _flush(self, writes: list[Write]) -> None:
        """Send queued writes in one round trip; never raises (each failed write runs its fallback)."""
        if len(writes) == 1:
            self._send_now(writes[0])
            return
        pipe = self.client.pipeline(transaction=False)
        for write in writes:
            write.issue(pipe)
        try:
            replies = self._call(lambda: pipe.execute(raise_on_error=False))
        except StoreUnavailable:
            for write in writes:
                run_failed(write)
            return
        settle_replies(writes, replies, self._send_now, self._refuses_writes)

    def has_room(self) -> bool:
        """Whether Redis's used memory is below cache_memory_share of its maxmemory (INFO read at most once per
        memory_check_interval): past it cache entries stay in the local tiers, and control state keeps the rest.
        Without a maxmemory there is no bound to keep to: always."""
        fits, checked = self._room
        if time.monotonic() - checked < self.memory_check_interval or not self.available() \
                or not self._room_lock.acquire(blocking=False):
            return fits  # read recently, Redis is down, or another thread is reading it now
        try:
            self._room = (fits, time.monotonic())  # one read per interval, even when this one fails
            memory = self.call(lambda: self.client.info("memory"))
            limit, used = int(memory.get("maxmemory") or 0), int(memory.get("used_memory") or 0)
            if not limit and not self._unbounded_logged:
                self._unbounded_logged = True
                logger.warning("redis has no maxmemory: cache entries in it are bounded by their TTL alone")
            now_fits = not limit or used < self.cache_memory_share * limit
            if now_fits != fits:
                (logger.info if now_fits else logger.warning)(
                    "redis memory is %s: cache entries %s written to redis", "below its cache share" if now_fits
                    else "past its cache share", "are" if now_fits else "are no longer",
                    extra={"used_memory": used, "maxmemory": limit, "cache_share": self.cache_memory_share})
            self._room = (now_fits, time.monotonic())
            return now_fits
        except StoreUnavailable:
            return fits
        finally:
            self._room_lock.release()

    def ping(self) -> bool:
        """Probe Redis (also ends a known outage early when it answers)."""
        try:
            return bool(self.call(self.client.ping))
        except StoreUnavailable:
            return False

    def get_many(self, keys: list[str]) -> list[str | None]:
        # decode_responses=True: Redis answers str, not the bytes redis-py's annotation allows.
        return self.call(lambda: self.client.mget([self.k(key) for key in keys]))  # type: ignore[arg-type,return-value]

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self.call(lambda: self.client.set(self.k(key), value, px=_ms(ttl) if ttl else None))

    def get_bytes(self, key: str) -> bytes | None:
        """The value, read now or, when this thread asked for it ahead (prefetch_bytes), in its last script's round
        trip."""
        name = self.k(key)
        read, value = self._prefetches.take(name)
        if read:
            return value
        return self.call(lambda: self.binary.get(name))  # type: ignore[return-value]

    def prefetch_bytes(self, key: str) -> None:
        """Read this key with this thread's next script call (the AI limits'), in its round trip, for the get_bytes
        after it (backend/resilience/redis_prefetch.py); nothing while Redis is known down."""
        if self.available():
            self._prefetches.ask(self.k(key))

    def forget_prefetched(self) -> None:
        """Drop what this thread read ahead and nobody took (its request is over)."""
        self._prefetches.forget()

    def set_bytes(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Inside ``deferring`` the write is queued (a cache entry: its failure changes nothing for the caller)."""
        value, name = require_bytes(value, self.name), self.k(key)
        self._prefetches.drop(name)  # what this thread read ahead is older than what it writes
        if not self._queue(Write(lambda client: client.set(name, value, px=_ms(ttl) if ttl else None))):
            self.call(lambda: self.binary.set(name, value, px=_ms(ttl) if ttl else None))

    def add(self, key: str, value: str, ttl: float) -> bool:
        return bool(self.call(lambda: self.client.set(self.k(key), value, px=_ms(ttl), nx=True)))

    def delete(self, keys: Iterable[str]) -> None:
        names = [self.k(key) for key in keys]
        for name in names:
            self._prefetches.drop(name)
        if names:
            self.call(lambda: self.client.delete(*names))

    def delete_if_equals(self, key: str, value: str) -> bool:
        return bool(self.call(lambda: self._delete_if_equals(keys=[self.k(key)], args=[value])))

    def expire_if_equals(self, key: str, value: str, ttl: float) -> bool:
        return bool(self.call(lambda: self._expire_if_equals(keys=[self.k(key)], args=[value, _ms(ttl)])))

    def set_if_equals(self, key: str, value: str, new_value: str, ttl: float) -> bool:
        """Inside ``deferring`` the write is queued and True returned: a lock handed on, whose owner reads nothing
        back (if the lock was lost meanwhile, the compare in the script leaves it to its new owner all the same).
        While Redis is known down it is tried now, so that StoreUnavailable sends the caller to its fallback."""
        keys, args = [self.k(key)], [value, new_value, _ms(ttl)]
        if self._queue(Write(script_write(self._set_if_equals, keys, args))):
            return True
        return bool(self.call(lambda: self._set_if_equals(keys=keys, args=args)))  # type: ignore[arg-type]

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        return int(self.call(lambda: self._incr_with_ttl(keys=[self.k(key)], args=[amount, _ms(ttl) if ttl else 0])))

    def delete_prefix(self, prefix: str) -> int:
        self._prefetches.forget()

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
        """Register a Lua script on this client (atomic multi-key transitions); a call carries the reads this thread
        asked for ahead (prefetch_bytes) in its round trip."""
        return RidingScript(self.client.register_script(source), self.binary, self._prefetches)

    def close(self) -> None:
        close_client(self.client)
        close_client(self.binary)


def _ms(seconds: float | None) -> int:
    """Seconds to whole milliseconds, at least 1."""
    return max(1, int((seconds or 0) * 1000))


def _glob_escape(text: str) -> str:
    """Escape Redis glob characters so a prefix matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
