"""A circuit breaker per provider whose state every worker and instance shares (Redis, else a local store).

No lock is held during the call: acquire and record are two short atomic updates, so calls run concurrently.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from backend.errors import ProviderUnavailable
from backend.resilience import breaker_state as machine
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.store import Store, StoreUnavailable
from backend.resilience.store_redis import RedisStore

logger = logging.getLogger(__name__)
STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2, "forced_open": 2}


@dataclass(frozen=True)
class Permit:
    """Leave to make one call; a trial permit is one of the bounded half-open probes."""

    trial: bool
    started: float


class CircuitBreaker:
    """CLOSED / OPEN / HALF_OPEN / FORCED_OPEN over a sliding window, with a slow-call threshold."""

    def __init__(self, name: str, config: BreakerConfig, *, local: Store, redis: RedisStore | None = None,
                 slow_call_seconds: float = 10.0, open_hint_seconds: float = 0.2):
        self.name = name
        self.config = config
        self.local = local
        self.redis = redis
        self.slow_call_seconds = slow_call_seconds
        self.key = f"breaker:{name}"
        self._lua = redis.script(machine.LUA) if redis is not None else None
        # The last refusal this process saw: (open until, epoch s; seen at, monotonic s). Believed for
        # open_hint_seconds, so an outage costs one shared-state read per interval, not several per request.
        self.open_hint_seconds = open_hint_seconds
        self._open_hint = (0.0, 0.0)

    def acquire(self) -> Permit:
        """Return a permit, or raise PROVIDER_UNAVAILABLE with Retry-After when the breaker refuses."""
        now = time.time()
        answer, until = self._run("acquire", now)
        if answer == "reject":
            self._open_hint = (until, time.monotonic())
            raise self._refusal(until, now)
        return Permit(trial=answer == "trial", started=time.monotonic())

    def refuse_if_known_open(self) -> None:
        """Raise PROVIDER_UNAVAILABLE at once while this process saw a refusal less than open_hint_seconds ago
        (and the breaker was to stay open longer): the caller then skips the cache lock and the breaker read."""
        until, seen = self._open_hint
        now = time.time()
        if now < until and time.monotonic() - seen < self.open_hint_seconds:
            raise self._refusal(until, now)

    def _refusal(self, until: float, now: float) -> ProviderUnavailable:
        return ProviderUnavailable(f"{self.name} is unavailable: circuit breaker open", provider=self.name,
                                   retry_after=max(1.0, until - now))

    def record(self, permit: Permit, failed: bool, seconds: float | None = None) -> None:
        """Report how the permitted call ended; a success slower than the threshold counts as a failure, except
        for a half-open trial, where any success shows the provider answers again."""
        took = seconds if seconds is not None else time.monotonic() - permit.started
        slow = took > self.slow_call_seconds and not permit.trial
        self._run("record", time.time(), failed or slow, permit.trial)

    def reset(self) -> None:
        """Close the breaker and forget its history, for every worker and instance; returns once no process
        can still believe an earlier refusal."""
        self._run("reset", time.time())
        self._open_hint = (0.0, 0.0)
        time.sleep(self.open_hint_seconds)
        logger.warning("breaker reset", extra={"breaker": self.name})

    def force_open(self) -> None:
        """Hold the breaker open (maintenance) until reset."""
        self._run("force_open", time.time())
        logger.warning("breaker forced open", extra={"breaker": self.name})

    def state(self) -> dict[str, Any]:
        """The shared state as operators see it."""
        now = time.time()
        _, raw = self._run("read", now)
        doc = json.loads(raw) if raw else machine.closed_state()
        return machine.snapshot(doc, now, self.config)

    def _run(self, op: str, now: float, failed: bool = False, trial: bool = False) -> tuple[str, Any]:
        """Apply one operation atomically: a Lua script on Redis, a locked update on the local store."""
        if self._lua is not None and self.redis is not None and self.redis.available():
            try:
                args = [op, now, *self.config.args(), int(failed), int(trial)]
                answer, extra = self.redis.call(lambda: self._lua(keys=[self.redis.k(self.key)], args=args))
                return answer, (extra if op == "read" else float(extra))
            except StoreUnavailable:
                pass  # Redis went away: the local store decides until it is back
        try:
            return self.local.update(self.key, lambda raw: _apply_local(raw, op, now, failed, trial, self.config))
        except StoreUnavailable:
            # No state reachable at all: fail open (allow, record nothing) rather than fail every request.
            logger.warning("breaker state unreachable: allowing the call", extra={"breaker": self.name})
            return ("allow", now) if op == "acquire" else (("doc", "") if op == "read" else ("ok", now))


def _apply_local(raw: str | None, op: str, now: float, failed: bool, trial: bool,
                 config: BreakerConfig) -> tuple[str | None, tuple[str, Any]]:
    """The Python twin of the Lua script: (new document or None to leave it, answer)."""
    doc = json.loads(raw) if raw else machine.closed_state()
    if op == "read":
        return None, ("doc", raw or "")
    if op == "acquire":
        before = json.dumps(doc, sort_keys=True)
        answer = machine.acquire(doc, now, config)
        until = doc["next_probe_at"] if doc["state"] == "open" else now + (
            config.recovery_timeout if doc["state"] == "forced_open" else 1)
        changed = json.dumps(doc, sort_keys=True) != before
        return (json.dumps(doc) if changed else None), (answer, until)
    if op == "record":
        machine.record(doc, now, failed, trial, config)
    elif op == "reset":
        doc = machine.closed_state()
    elif op == "force_open":
        doc = {**machine.closed_state(), "state": "forced_open", "opened_at": now}
    return json.dumps(doc), ("ok", now + 1)
