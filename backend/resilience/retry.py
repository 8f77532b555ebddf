"""Retries with tenacity: transient provider errors only, full-jitter backoff, Retry-After honoured, deadline kept."""
from __future__ import annotations

import random
import time
from typing import Any, Callable, cast

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
)
from tenacity.stop import stop_base

from backend.errors import ProviderError, ProviderInputTimeout, ProviderTimeout
from backend.observability import metrics
from backend.observability.decisions import record_decision


def is_transient(exc: BaseException) -> bool:
    """Timeouts, connection errors, 429 and 5xx: worth another attempt."""
    return isinstance(exc, ProviderError) and exc.transient


class RetryPolicy:
    """Exponential backoff with full jitter (base * 2^n, capped), or the provider's Retry-After when it gave one."""

    def __init__(self, max_attempts: int, *, base: float = 0.25, cap: float = 4.0, retry_after_cap: float = 10.0):
        self.max_attempts = max_attempts
        self.base, self.cap, self.retry_after_cap = base, cap, retry_after_cap

    def wait_seconds(self, state: RetryCallState) -> float:
        """How long to sleep before the next attempt."""
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None)
        if hint is not None:
            return min(float(hint), self.retry_after_cap)
        return random.uniform(0, min(self.cap, self.base * 2 ** (state.attempt_number - 1)))

    def call(self, attempt: Callable[[float], Any], deadline: float, *, provider: str, operation: str,
             attempts: int | None = None, input_seconds: float = 0.0) -> Any:
        """Run attempt(seconds_left) until it succeeds, fails for good, or the next wait would pass the deadline.

        ``input_seconds`` is what this input needs beyond a short one: an attempt with less time left than that is
        not made (nor counted as an upstream call), since it could only time out after being paid for.
        """

        def no_time_for_next(state: RetryCallState) -> bool:
            # tenacity computes the upcoming sleep before asking stop: never sleep past the deadline, nor retry an
            # input whose next attempt could not finish in what would be left.
            return time.monotonic() + (state.upcoming_sleep or 0) + input_seconds >= deadline - 0.05

        def log_retry(state: RetryCallState) -> None:
            record_decision(provider, operation, "retry", attempt=state.attempt_number,
                            wait_s=round(state.upcoming_sleep or 0, 3),
                            error=type(state.outcome.exception()).__name__ if state.outcome else None)

        def one_attempt() -> Any:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProviderTimeout("The request deadline passed", provider=provider)
            if remaining < input_seconds:
                raise ProviderInputTimeout(
                    f"Not attempted: this input needs about {input_seconds:.0f} s more than a short one, and only "
                    f"{remaining:.1f} s of the request's deadline are left", provider=provider,
                    details={"input_seconds": round(input_seconds, 1), "remaining_seconds": round(remaining, 1)})
            try:
                value = attempt(remaining)
            except ProviderError as exc:
                metrics.AI_UPSTREAM_CALLS.labels(provider, operation, type(exc).__name__).inc()
                raise
            metrics.AI_UPSTREAM_CALLS.labels(provider, operation, "ok").inc()
            return value

        # tenacity takes any callable of the retry state as a stop condition; its annotation wants its own class.
        deadline_stop = cast(stop_base, no_time_for_next)
        retrying = Retrying(stop=stop_any(stop_after_attempt(attempts or self.max_attempts), deadline_stop),
                            wait=self.wait_seconds, retry=retry_if_exception(is_transient), reraise=True,
                            before_sleep=log_retry, sleep=time.sleep)
        try:
            return retrying(one_attempt)
        except ProviderError as exc:
            if exc.transient:
                record_decision(provider, operation, "gave_up", error=type(exc).__name__)
            raise
