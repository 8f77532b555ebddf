"""A circuit breaker per provider whose state every worker and instance shares (Redis, else a local store).

No lock is held during the call: acquire and record are two short atomic updates, so calls run concurrently.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from backend.errors import ProviderUnavailable
from backend.resilience import breaker_state as machine
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.redis_batch import script_write
from backend.resilience.store import FailoverStore, Store, StoreUnavailable
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
                 slow_call_seconds: float = 10.0, open_hint_seconds: float = 0.2,
                 clock: Callable[[], float] = time.time):
        self.name = name
        self.config = config
        self.local = local
        # Where an operator's change must land to reach every process that reads this breaker without Redis: the
        # host's disk behind its memory fallback, never the fallback alone.
        self.home = local.primary if isinstance(local, FailoverStore) else local
        self.redis = redis
        self.slow_call_seconds = slow_call_seconds
        self.clock = clock  # the local stores' clock; on Redis the script reads Redis's
        self.key = f"breaker:{name}"
        self._lua = redis.script(machine.LUA) if redis is not None else None
        # The last refusal this process saw: (open until, seen at; both monotonic s). Believed for
        # open_hint_seconds, so an outage costs one shared-state read per interval, not several per request.
        self.open_hint_seconds = open_hint_seconds
        self._open_hint = (0.0, 0.0)
        self._malformed_logged = False

    def acquire(self) -> Permit:
        """Return a permit, or raise PROVIDER_UNAVAILABLE with Retry-After when the breaker refuses."""
        answer, until, now = self._run("acquire")
        if answer == "reject":
            seen = time.monotonic()
            self._open_hint = (seen + (until - now), seen)
            raise self._refusal(until - now)
        return Permit(trial=answer == "trial", started=time.monotonic())

    def refuse_if_known_open(self) -> None:
        """Raise PROVIDER_UNAVAILABLE at once while this process saw a refusal less than open_hint_seconds ago
        (and the breaker was to stay open longer): the caller then skips the cache lock and the breaker read."""
        until, seen = self._open_hint
        now = time.monotonic()
        if now < until and now - seen < self.open_hint_seconds:
            raise self._refusal(until - now)

    def _refusal(self, remaining: float) -> ProviderUnavailable:
        return ProviderUnavailable(f"{self.name} is unavailable: circuit breaker open", provider=self.name,
                                   retry_after=max(1.0, remaining))

    def record(self, permit: Permit, failed: bool, seconds: float | None = None) -> None:
        """Report how the permitted call ended; a success slower than the threshold counts as a failure, except
        for a half-open trial, where any success shows the provider answers again."""
        took = seconds if seconds is not None else time.monotonic() - permit.started
        failed = failed or (took > self.slow_call_seconds and not permit.trial)
        redis, lua = self.redis, self._lua
        if lua is None or redis is None or not redis.available():
            self._run("record", failed, permit.trial)
            return
        # Nobody waits for the verdict: on Redis it goes with the thread's next round trip (redis_batch.py), and
        # if it cannot be written there the local store counts it, as _run does.
        redis.send(script_write(lua, [redis.k(self.key)], self._args("record", failed, permit.trial)),
                   replied=self._check_reply,
                   failed=lambda: self._run_local("record", failed, permit.trial, strict=False))

    def release(self, permit: Permit) -> None:
        """Hand back a permit without a verdict, for a call that proved nothing about the provider: a half-open
        trial permit goes back at once, so the next caller is the trial; any other permit needs no round trip."""
        if permit.trial:
            self._run("release", trial=True)

    def reset(self) -> None:
        """Close the breaker and forget its history, for every worker and instance; returns once no process
        can still believe an earlier refusal. Raises StoreUnavailable, changing nothing, when the shared state
        (Redis, or the host's disk) cannot be written: a reset seen by this process alone would be undone."""
        self._run("reset", strict=True)
        self._open_hint = (0.0, 0.0)
        time.sleep(self.open_hint_seconds)
        logger.warning("breaker reset", extra={"breaker": self.name})

    def force_open(self) -> None:
        """Hold the breaker open (maintenance) until reset; raises StoreUnavailable, changing nothing, when the
        shared state cannot be written (the hold would not reach every worker, and would be lost)."""
        self._run("force_open", strict=True)
        logger.warning("breaker forced open", extra={"breaker": self.name})

    def state(self) -> dict[str, Any]:
        """The shared state as operators see it."""
        _, raw, now = self._run("read")
        doc, malformed = machine.parse(raw)
        if malformed:
            self._report_malformed()
        return machine.snapshot(doc, now, self.config)

    def _run(self, op: str, failed: bool = False, trial: bool = False, *,
             strict: bool = False) -> tuple[str, Any, float]:
        """Apply one operation atomically: a Lua script on Redis, a locked update on the local store. Returns
        (answer, until or the raw document, now), times in the clock of the store that answered.

        strict (an operator's change): only the shared home (Redis, else the host's store) may take it, or
        StoreUnavailable is raised; otherwise the local store stands in, and with no state at all the call is let
        through."""
        redis, lua = self.redis, self._lua
        if lua is not None and redis is not None and (strict or redis.available()):
            try:
                args, keys = self._args(op, failed, trial), [redis.k(self.key)]
                answer, extra, now = self._check_reply(redis.call(lambda: lua(keys=keys, args=args)))
                return answer, (extra if op == "read" else float(extra)), float(now)
            except StoreUnavailable:
                if strict:
                    raise
                # Redis went away: the local store decides until it is back
        return self._run_local(op, failed, trial, strict=strict)

    def _args(self, op: str, failed: bool, trial: bool) -> list[Any]:
        return [op, *self.config.args(), int(failed), int(trial)]

    def _check_reply(self, reply: Any) -> tuple[str, Any, Any]:
        """The script's (answer, extra, now), once its malformed flag is reported."""
        answer, extra, now, malformed = reply
        if int(malformed):
            self._report_malformed()
        return answer, extra, now

    def _run_local(self, op: str, failed: bool, trial: bool, *, strict: bool) -> tuple[str, Any, float]:
        """The operation on this host's (or process's) store: the Python twin of the script."""
        now = self.clock()
        try:
            answer, extra, malformed = (self.home if strict else self.local).update(
                self.key, lambda raw: _apply_local(raw, op, now, failed, trial, self.config))
        except StoreUnavailable:
            if strict:
                raise
            # No state reachable at all: fail open (allow, record nothing) rather than fail every request.
            logger.warning("breaker state unreachable: allowing the call", extra={"breaker": self.name})
            return ("allow", now, now) if op == "acquire" else (("doc", "", now) if op == "read" else ("ok", now, now))
        if malformed:
            self._report_malformed()
        return answer, extra, now

    def _report_malformed(self) -> None:
        """Log once per process that the stored state had a shape this version cannot use (read as closed)."""
        if not self._malformed_logged:
            self._malformed_logged = True
            logger.warning("breaker state has an unexpected shape: treated as closed until it is next written",
                           extra={"breaker": self.name})


def _apply_local(raw: str | None, op: str, now: float, failed: bool, trial: bool,
                 config: BreakerConfig) -> tuple[str | None, tuple[str, Any, bool]]:
    """The Python twin of the Lua script: (new document or None to leave it, (answer, extra, malformed))."""
    if op == "read":
        return None, ("doc", raw or "", False)  # state() parses (and reports) it
    doc, malformed = machine.parse(raw)
    if op == "acquire":
        before = json.dumps(doc, sort_keys=True)
        answer = machine.acquire(doc, now, config)
        until = doc["next_probe_at"] if doc["state"] == "open" else now + (
            config.recovery_timeout if doc["state"] == "forced_open" else 1)
        changed = json.dumps(doc, sort_keys=True) != before
        return (json.dumps(doc) if changed else None), (answer, until, malformed)
    if op == "release":
        changed = machine.release(doc, trial)
        return (json.dumps(doc) if changed else None), ("ok", now + 1, malformed)
    if op == "record":
        machine.record(doc, now, failed, trial, config)
    elif op == "reset":
        doc = machine.closed_state()
    elif op == "force_open":
        doc = {**machine.closed_state(), "state": "forced_open", "opened_at": now}
    return json.dumps(doc), ("ok", now + 1, malformed)
