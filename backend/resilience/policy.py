"""The one way every upstream call is made: cache -> bulkhead -> single-flight -> breaker -> retry(timeout(call))."""
from __future__ import annotations

import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from backend.errors import (
    AppError,
    BudgetExceeded,
    ProviderError,
    ProviderInputTimeout,
    ProviderNotConfigured,
    ProviderRejected,
    ProviderTimeout,
)
from backend.observability import cost, metrics
from backend.observability.decisions import record_decision
from backend.resilience import spend
from backend.resilience.breaker import CircuitBreaker
from backend.resilience.bulkhead import Bulkhead
from backend.resilience.cache import TieredCache
from backend.resilience.retry import RetryPolicy
from backend.resilience.singleflight import SingleFlight

Call = Callable[[float], Any]


@dataclass(frozen=True)
class Outcome:
    """A provider result, how it was obtained (X-Cache: HIT, MISS or STALE) and which provider answered."""

    value: Any
    cache: str = "MISS"
    provider: str = ""

    @property
    def cached(self) -> bool:
        """Whether the value came from the cache (or another caller's call) rather than our own upstream call."""
        return self.cache != "MISS"


class ProviderPolicy:
    """Runs one provider operation; assembled once per operation in create_app."""

    def __init__(self, provider: str, operation: str, *, deadline_seconds: float, cache: TieredCache | None = None,
                 flights: SingleFlight | None = None, breaker: CircuitBreaker | None = None,
                 bulkhead: Bulkhead | None = None, retry: RetryPolicy | None = None, partial_ttl: float = 300.0,
                 ttl: float | None = None, metered: bool = True, holds: bool = True,
                 deferred_writes: Callable[[], AbstractContextManager[None]] = nullcontext):
        self.provider = provider
        self.operation = operation
        self.deadline_seconds = deadline_seconds
        self.cache = cache
        self.flights = flights
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.retry = retry or RetryPolicy(1)
        self.partial_ttl = partial_ttl
        self.ttl = ttl  # of a complete answer (None: the namespace's); a stand-in provider's answers are kept briefly
        # Paid calls are admitted against the caller's daily budget (backend.resilience.spend); in-process answers
        # and free listings are not.
        self.metered = metered
        # A request's side calls (a turn's corrections and summary) are checked against the budget but hold nothing:
        # its main call holds for the request, which may cross the budget by at most its own cost.
        self.holds = holds
        # Where the writes that end a call (breaker verdict, settlement, cache entry, lock handed on) wait to go
        # to Redis together: RedisStore.deferring (backend/resilience/redis_batch.py), or nothing to batch.
        self.deferred_writes = deferred_writes

    def execute(self, key: str, call: Call, *, input_seconds: float = 0.0, deadline: float | None = None,
                cost_bound: float = 0.0) -> Outcome:
        """Return the value for ``key``: a fresh cache hit, else one upstream call per flight, else stale.

        ``input_seconds`` is the time this input legitimately needs beyond a small one's (long audio, a long text):
        it extends the deadline, and the breaker judges the call's slowness net of it. ``deadline`` (monotonic) is
        the request's, when a provider chain shares one between its providers. ``cost_bound`` (USD) is what the
        upstream call can cost at most: held against the caller's budget while it runs, so calls running at once
        cannot together pass the budget by more than one call's cost.
        """
        if deadline is None:
            deadline = self.deadline_for(input_seconds)
        # One generation for the whole request: what is computed across a clear is stored under the old one.
        token = self.cache.token_for(key) if self.cache is not None else None
        entry = self.cache.lookup(key, token=token) if self.cache is not None else None
        if entry is not None and entry.fresh:
            metrics.CACHE_OPERATIONS.labels("get", "hit").inc()
            cost.avoided(self.provider, "cache", entry.cost_usd)
            record_decision(self.provider, self.operation, "cache_hit", tier=entry.tier)
            return Outcome(entry.value, "HIT", self.provider)
        if self.cache is not None:  # a personal (uncached) operation is not a cache miss
            metrics.CACHE_OPERATIONS.labels("get", "stale" if entry is not None else "miss").inc()
        try:
            if self.breaker is not None:
                self._through_breaker(self.breaker.refuse_if_known_open)
            with self._bulkhead_slot(), self.deferred_writes():
                if self.flights is None:
                    value, _ = self._compute(key, call, deadline, token, input_seconds, cost_bound)
                    return Outcome(value, "MISS", self.provider)
                (value, spent), led = self.flights.run(key, lambda: self._compute(key, call, deadline, token,
                                                                                  input_seconds, cost_bound),
                                                       lambda: self._fresh_value(key, token), deadline)
        except ProviderError as exc:
            if not isinstance(exc, BudgetExceeded):  # the caller's spending, not the operation's health
                metrics.AI_ERRORS.labels(self.operation, type(exc).__name__).inc()
            if entry is not None and _stale_may_answer(exc):
                record_decision(self.provider, self.operation, "served_stale", error=type(exc).__name__)
                return Outcome(entry.value, "STALE", self.provider)
            raise
        if not led:
            record_decision(self.provider, self.operation, "joined_flight")
            cost.avoided(self.provider, "singleflight", spent)
        return Outcome(value, "MISS" if led else "HIT", self.provider)

    def deadline_for(self, input_seconds: float = 0.0) -> float:
        """The monotonic deadline of a request starting now, its input's allowance included."""
        return time.monotonic() + self.deadline_seconds + input_seconds

    def _compute(self, key: str, call: Call, deadline: float, token: str | None,
                 input_seconds: float, cost_bound: float) -> tuple[Any, float]:
        """Make the upstream call within what is left of the deadline, admitted against the budget of whoever pays
        (only the flight's leader gets here: a hit or a joined flight is free); cache a good answer with its cost."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProviderTimeout("No time left for the provider call", provider=self.provider)
        started = time.perf_counter()
        bound = cost_bound if self.holds else 0.0
        paid = spend.paid_call(self.provider, self.operation, bound, left) if self.metered else nullcontext()
        with cost.ledger() as book:
            try:
                with paid:
                    value = self._guarded(call, deadline, input_seconds)
            finally:
                metrics.AI_DURATION.labels(self.operation, self.provider).observe(time.perf_counter() - started)
        if self.cache is not None:
            partial = isinstance(value, dict) and value.get("partial") is True
            # A repaired or completed answer is kept briefly: a better one may come on the next call.
            self.cache.store(key, value, ttl=self.partial_ttl if partial else self.ttl, cost_usd=book.cost_usd,
                             token=token)
        return value, book.cost_usd

    def _guarded(self, call: Call, deadline: float, input_seconds: float) -> Any:
        """Through the breaker, with retries; a half-open trial gets exactly one attempt.

        The caller already holds a bulkhead slot, so a refusal there never strands a half-open trial permit.
        """
        permit = self._permit()
        attempt_seconds: list[float] = []

        def timed(remaining: float) -> Any:
            started = time.monotonic()
            try:
                return call(remaining)
            finally:
                attempt_seconds.append(time.monotonic() - started)

        # Slowness is judged on the last attempt, not on the back-off before it, and net of what its input needs.
        try:
            value = self.retry.call(timed, deadline, provider=self.provider, operation=self.operation,
                                    attempts=1 if permit is not None and permit.trial else None,
                                    input_seconds=input_seconds)
        except BaseException as exc:
            if permit is not None:
                self._record_failure(permit, exc, attempt_seconds[-1] - input_seconds if attempt_seconds else None)
            raise
        if permit is not None:
            self.breaker.record(permit, failed=False, seconds=attempt_seconds[-1] - input_seconds)  # type: ignore
        return value

    def _record_failure(self, permit: Any, exc: BaseException, seconds: float | None) -> None:
        """Tell the breaker how a failed call ended; one that says nothing of the provider is not judged."""
        if _proves_nothing(exc):
            # Ignored, as resilience4j ignores exception types: neither a failure nor a success. A half-open trial
            # permit goes back unjudged and the next caller becomes the trial: as a failure, a long input would hold
            # the breaker open for everyone; as a success, it would close the breaker on a call that proved nothing.
            self.breaker.release(permit)  # type: ignore[union-attr]
            return
        self.breaker.record(permit, failed=_counts_as_failure(exc), seconds=seconds)  # type: ignore[union-attr]

    @contextmanager
    def _bulkhead_slot(self) -> Iterator[None]:
        """Hold a bulkhead slot while this thread waits on the provider, whether it leads the flight or joins one.

        A follower ties up a thread as surely as the caller it waits for: when followers went around the
        bulkhead, twelve identical slow requests took every thread of a worker (health 6.5 s) where twelve
        distinct ones got six fast 503s. A thread that waits for another process's flight holds a slot too.
        """
        if self.bulkhead is None:
            yield
            return
        try:
            self.bulkhead.acquire()
        except ProviderError:
            record_decision(self.provider, self.operation, "rejected", limit=self.bulkhead.limit)
            raise
        try:
            yield
        finally:
            self.bulkhead.release()

    def _permit(self):
        """A breaker permit, or PROVIDER_UNAVAILABLE (counted and logged) while it is open."""
        return self._through_breaker(self.breaker.acquire) if self.breaker is not None else None

    def _through_breaker(self, ask: Callable[[], Any]) -> Any:
        """Ask the breaker (for a permit, or whether this process knows it open); a refusal is a decision."""
        try:
            return ask()
        except ProviderError as exc:
            record_decision(self.provider, self.operation, "short_circuited", retry_after=exc.retry_after)
            raise

    def _fresh_value(self, key: str, token: str | None) -> tuple[Any, float] | None:
        """The value (and its cost) another process's flight left in the shared cache, if fresh."""
        entry = self.cache.lookup(key, count=False, token=token) if self.cache is not None else None
        return (entry.value, entry.cost_usd) if entry is not None and entry.fresh else None

    # The same steps, public for backend.resilience.streams, which takes them one at a time over a stream's life.
    bulkhead_slot = _bulkhead_slot
    through_breaker = _through_breaker
    permit = _permit
    record_failure = _record_failure


def _counts_as_failure(exc: BaseException) -> bool:
    """Provider trouble, and anything unexpected, moves the breaker; a caller's bad input does not."""
    if isinstance(exc, ProviderError):
        return exc.counts_for_breaker
    return not (isinstance(exc, AppError) and exc.status < 500)


def _proves_nothing(exc: BaseException) -> bool:
    """An outcome that tells nothing of the provider's health: a time-out the input's length accounts for, or the
    caller's own bad input refused on our side (a provider's own refusal does show that it answers)."""
    if isinstance(exc, ProviderInputTimeout):
        return True
    return isinstance(exc, AppError) and not isinstance(exc, ProviderError) and exc.status < 500


def _stale_may_answer(exc: ProviderError) -> bool:
    """A stale answer beats an outage, but not a refusal of the request itself or a missing configuration."""
    return not isinstance(exc, (ProviderRejected, ProviderNotConfigured))
