"""The one way every upstream call is made: cache -> single-flight -> bulkhead -> breaker -> retry(timeout(call))."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from backend.errors import AppError, ProviderError, ProviderNotConfigured, ProviderRejected, ProviderTimeout
from backend.observability import cost, metrics
from backend.observability.decisions import record_decision
from backend.resilience.breaker import CircuitBreaker
from backend.resilience.bulkhead import Bulkhead
from backend.resilience.cache import TieredCache
from backend.resilience.retry import RetryPolicy
from backend.resilience.singleflight import SingleFlight

Call = Callable[[float], Any]


@dataclass(frozen=True)
class Outcome:
    """A provider result and how it was obtained (X-Cache: HIT, MISS or STALE)."""

    value: Any
    cache: str = "MISS"

    @property
    def cached(self) -> bool:
        """Whether the value came from the cache (or another caller's call) rather than our own upstream call."""
        return self.cache != "MISS"


class ProviderPolicy:
    """Runs one provider operation; assembled once per operation in create_app."""

    def __init__(self, provider: str, operation: str, *, deadline_seconds: float, cache: TieredCache | None = None,
                 flights: SingleFlight | None = None, breaker: CircuitBreaker | None = None,
                 bulkhead: Bulkhead | None = None, retry: RetryPolicy | None = None, partial_ttl: float = 300.0):
        self.provider = provider
        self.operation = operation
        self.deadline_seconds = deadline_seconds
        self.cache = cache
        self.flights = flights
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.retry = retry or RetryPolicy(1)
        self.partial_ttl = partial_ttl

    def execute(self, key: str, call: Call) -> Outcome:
        """Return the value for ``key``: a fresh cache hit, else one upstream call per flight, else stale."""
        deadline = time.monotonic() + self.deadline_seconds
        # One generation for the whole request: what is computed across a clear is stored under the old one.
        token = self.cache.token_for(key) if self.cache is not None else None
        entry = self.cache.lookup(key, token=token) if self.cache is not None else None
        if entry is not None and entry.fresh:
            metrics.CACHE_OPERATIONS.labels("get", "hit").inc()
            cost.avoided(self.provider, "cache", entry.cost_usd)
            record_decision(self.provider, self.operation, "cache_hit", tier=entry.tier)
            return Outcome(entry.value, "HIT")
        metrics.CACHE_OPERATIONS.labels("get", "stale" if entry is not None else "miss").inc()
        try:
            if self.breaker is not None:
                self._through_breaker(self.breaker.refuse_if_known_open)
            if self.flights is None:
                value, _ = self._compute(key, call, deadline, token)
                return Outcome(value, "MISS")
            (value, spent), led = self.flights.run(key, lambda: self._compute(key, call, deadline, token),
                                                   lambda: self._fresh_value(key, token), deadline)
        except ProviderError as exc:
            metrics.AI_ERRORS.labels(self.operation, type(exc).__name__).inc()
            if entry is not None and _stale_may_answer(exc):
                record_decision(self.provider, self.operation, "served_stale", error=type(exc).__name__)
                return Outcome(entry.value, "STALE")
            raise
        if not led:
            record_decision(self.provider, self.operation, "joined_flight")
            cost.avoided(self.provider, "singleflight", spent)
        return Outcome(value, "MISS" if led else "HIT")

    def _compute(self, key: str, call: Call, deadline: float, token: str | None) -> tuple[Any, float]:
        """Make the upstream call within what is left of the deadline; cache a good answer with its cost."""
        if deadline - time.monotonic() <= 0:
            raise ProviderTimeout("No time left for the provider call", provider=self.provider)
        started = time.perf_counter()
        with cost.ledger() as book:
            try:
                value = self._guarded(call, deadline)
            finally:
                metrics.AI_DURATION.labels(self.operation, self.provider).observe(time.perf_counter() - started)
        if self.cache is not None:
            partial = isinstance(value, dict) and value.get("partial") is True
            # A repaired or completed answer is kept briefly: a better one may come on the next call.
            self.cache.store(key, value, ttl=self.partial_ttl if partial else None, cost_usd=book.cost_usd,
                             token=token)
        return value, book.cost_usd

    def _guarded(self, call: Call, deadline: float) -> Any:
        """Through the bulkhead and the breaker, with retries; a half-open trial gets exactly one attempt.

        The bulkhead comes first so that a refusal there never strands a half-open trial permit.
        """
        self._enter_bulkhead()
        try:
            permit = self._permit()
            attempt_seconds: list[float] = []

            def timed(remaining: float) -> Any:
                started = time.monotonic()
                try:
                    return call(remaining)
                finally:
                    attempt_seconds.append(time.monotonic() - started)

            try:
                value = self.retry.call(timed, deadline, provider=self.provider, operation=self.operation,
                                        attempts=1 if permit is not None and permit.trial else None)
            except BaseException as exc:
                if permit is not None:
                    self.breaker.record(permit, failed=_counts_as_failure(exc))  # type: ignore[union-attr]
                raise
            if permit is not None:
                # Slowness is judged on the attempt that answered, not on the back-off before it.
                self.breaker.record(permit, failed=False, seconds=attempt_seconds[-1])  # type: ignore[union-attr]
            return value
        finally:
            if self.bulkhead is not None:
                self.bulkhead.release()

    def _enter_bulkhead(self) -> None:
        if self.bulkhead is None:
            return
        try:
            self.bulkhead.acquire()
        except ProviderError:
            record_decision(self.provider, self.operation, "rejected", limit=self.bulkhead.limit)
            raise

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


def _counts_as_failure(exc: BaseException) -> bool:
    """Provider trouble, and anything unexpected, moves the breaker; a caller's bad input does not."""
    if isinstance(exc, ProviderError):
        return exc.counts_for_breaker
    return not (isinstance(exc, AppError) and exc.status < 500)


def _stale_may_answer(exc: ProviderError) -> bool:
    """A stale answer beats an outage, but not a refusal of the request itself or a missing configuration."""
    return not isinstance(exc, (ProviderRejected, ProviderNotConfigured))
