"""Single-flight: identical concurrent requests cost one upstream call, across threads, workers and instances."""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from backend import errors
from backend.resilience.store import Store, StoreUnavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")
DONE = "done"  # the lock's value for a while after a successful flight


@dataclass
class _Flight(Generic[T]):
    """One in-process flight: followers wait on `done` for the leader's value or error."""

    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class SingleFlight:
    """In-process: threads join the leader's flight. Across processes: a lock in the shared store; followers
    poll the cache for the leader's result and take over when the lock disappears without one."""

    def __init__(self, store: Store | None, *, lock_ttl: float = 6.0, poll_interval: float = 0.05,
                 done_ttl: float = 2.0):
        self.store = store
        self.lock_ttl = lock_ttl
        self.done_ttl = done_ttl
        self.poll_interval = poll_interval
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        self._renewer = _LockRenewer(store, lock_ttl) if store is not None else None

    def run(self, key: str, compute: Callable[[], T], shared_result: Callable[[], T | None],
            deadline: float) -> tuple[T, bool]:
        """Return (value, led): led is False when the value came from another caller's upstream call."""
        while True:
            with self._lock:
                existing = self._flights.get(key)
                flight = existing if existing is not None else self._flights.setdefault(key, _Flight())
            if existing is None:
                break
            try:
                return self._follow_locally(flight, deadline), False
            except errors.ProviderError as exc:
                if exc.shared:
                    raise
                # The leader's own refusal (its caller's budget), not the provider's answer: ask again ourselves.
        try:
            flight.value, led = self._lead(key, compute, shared_result, deadline)
            return flight.value, led
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()

    def _follow_locally(self, flight: _Flight, deadline: float) -> Any:
        if not flight.done.wait(max(0.0, deadline - time.monotonic())):
            raise errors.ProviderTimeout("Timed out waiting for an identical request in flight")
        if flight.error is not None:
            raise flight.error
        return flight.value

    def _lead(self, key: str, compute: Callable[[], T], shared_result: Callable[[], T | None],
              deadline: float) -> tuple[T, bool]:
        """Lead across processes when the shared lock is ours, else wait for whoever holds it."""
        if self.store is None:
            return compute(), True
        lock_key, token = f"flight:{key}", uuid.uuid4().hex
        while True:
            try:
                acquired = self.store.add(lock_key, token, self.lock_ttl)
            except StoreUnavailable:
                acquired, token = True, ""  # no shared state at all: compute rather than fail
            if acquired:
                return self._compute_holding(key, lock_key, token, compute), True
            value = self._wait_for_leader(key, lock_key, shared_result, deadline)
            if value is not None:
                return value, False

    def _compute_holding(self, key: str, lock_key: str, token: str, compute: Callable[[], T]) -> T:
        if token and self._renewer is not None:
            self._renewer.hold(lock_key, token)
        try:
            value = compute()
        except BaseException as exc:
            if isinstance(exc, errors.ProviderError) and exc.shared:
                self._publish_error(key, token, exc)  # before the release: a follower sees one or the other
            self._release(lock_key, token)
            raise
        self._release(lock_key, token, done=True)
        return value

    def _release(self, lock_key: str, token: str, *, done: bool = False) -> None:
        """Give the lock back (if it is still ours). After a success it stays a while as DONE: a caller whose
        cache lookup missed just before our value was stored then waits for that value instead of leading a
        second call, without every leader re-reading the cache after taking the lock."""
        if token and self._renewer is not None:
            self._renewer.release(lock_key)
            try:
                if done:
                    self.store.set_if_equals(lock_key, token, DONE, self.done_ttl)  # type: ignore[union-attr]
                else:
                    self.store.delete_if_equals(lock_key, token)  # type: ignore[union-attr]
            except StoreUnavailable:
                pass  # it expires by itself

    def _wait_for_leader(self, key: str, lock_key: str, shared_result: Callable[[], T | None],
                         deadline: float) -> T | None:
        """Poll for the leader's result; None when there is no leader any more (then we compete for the lock).

        The leader's error reaches only the followers of that leader: it is published under the leader's token,
        so a caller arriving after a failed flight makes a fresh attempt instead of inheriting an old error.
        """
        assert self.store is not None
        leader = ""
        while time.monotonic() < deadline:
            value = shared_result()
            if value is not None:
                return value
            keys = [lock_key] + ([_error_key(key, leader)] if leader else [])
            try:
                holder, *failure = self.store.get_many(keys)
            except StoreUnavailable:
                return None
            if failure and failure[0] is not None:
                raise _rebuild_error(failure[0])
            if holder is None:
                # The leader stored its value, then released: a read taken before the release missed it.
                return shared_result()
            if holder == DONE:
                # A leader finished, yet its value is not ours to read (expired at once, or stored under an
                # older cache generation): lead a new flight.
                try:
                    self.store.delete_if_equals(lock_key, DONE)
                except StoreUnavailable:
                    pass
                return None
            leader = holder
            time.sleep(self.poll_interval)
        raise errors.ProviderTimeout("Timed out waiting for an identical request in flight")

    def _publish_error(self, key: str, token: str, exc: errors.ProviderError) -> None:
        """Let this flight's followers elsewhere fail with its error instead of each calling upstream again."""
        if not token:
            return
        payload = {"type": type(exc).__name__, "message": exc.message, "provider": exc.provider,
                   "retry_after": exc.retry_after}
        try:
            self.store.set(_error_key(key, token), json.dumps(payload), ttl=2.0)  # type: ignore[union-attr]
        except StoreUnavailable:
            pass


def _error_key(key: str, token: str) -> str:
    """Where the flight led under ``token`` publishes its error."""
    return f"flight-error:{key}:{token}"


def _rebuild_error(raw: str) -> errors.ProviderError:
    """Recreate the leader's error from what it published."""
    data = json.loads(raw)
    error_type = getattr(errors, data.get("type", ""), errors.ProviderError)
    if not (isinstance(error_type, type) and issubclass(error_type, errors.ProviderError)):
        error_type = errors.ProviderError
    return error_type(data.get("message"), provider=data.get("provider", ""), retry_after=data.get("retry_after"))


class _LockRenewer:
    """One daemon thread per process extends the TTL of every lock it holds, so a live leader keeps its
    lock however long the call takes, and a dead leader's lock expires within lock_ttl."""

    def __init__(self, store: Store | None, lock_ttl: float):
        self.store = store
        self.lock_ttl = lock_ttl
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, key: str, token: str) -> None:
        with self._lock:
            self._held[key] = token
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="flight-lock-renewer", daemon=True)
                self._thread.start()

    def release(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    def _loop(self) -> None:
        while True:
            time.sleep(self.lock_ttl / 3)
            with self._lock:
                held = list(self._held.items())
            for key, token in held:
                try:
                    self.store.expire_if_equals(key, token, self.lock_ttl)  # type: ignore[union-attr]
                except StoreUnavailable:
                    pass
                except Exception:  # the renewer must survive anything a store throws
                    logger.exception("lock renewal failed")
