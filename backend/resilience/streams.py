"""Provider streams through the policy: breaker, bulkhead and retries up to the first piece, never after it.

A streamed reply (a tutor's answer sent to the learner as server-sent events) cannot be retried once the learner
has seen text, nor cached (it is personal). So ``open_stream`` is eager: it takes a bulkhead slot and a breaker
permit, starts the stream and waits for its first piece, with retries; a caller that gets an exception may still
try another provider, and one that gets a ProviderStream knows the provider is answering. The slot and the permit
are held until the stream ends, fails or is abandoned (``close``).
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from typing import Any, Callable, Iterator

from backend.errors import BudgetExceeded, ProviderBadResponse, ProviderError, ProviderTimeout
from backend.observability import cost, metrics
from backend.observability.decisions import record_decision
from backend.resilience import spend
from backend.resilience.breaker import Permit
from backend.resilience.policy import ProviderPolicy

logger = logging.getLogger(__name__)
Start = Callable[[float], Iterator[str]]


def open_stream(policy: ProviderPolicy, start: Start, *, deadline: float, input_seconds: float = 0.0,
                cost_bound: float = 0.0) -> ProviderStream:
    """Start ``start(seconds_left)`` through ``policy`` and return its stream once the first piece arrived.

    Raises the provider's error (or PROVIDER_UNAVAILABLE for an open breaker or a full bulkhead, PROVIDER_TIMEOUT
    when ``deadline``, monotonic, already passed, BUDGET_EXCEEDED when whoever pays has spent its budget) with
    nothing sent to anyone, and nothing held. ``cost_bound`` is held against that budget until the stream ends.
    """
    slot = ExitStack()
    book = cost.Ledger()  # what this stream costs, settled against the payer's budget when it ends
    hold: spend.Hold | None = None
    try:
        if policy.breaker is not None:
            policy.through_breaker(policy.breaker.refuse_if_known_open)
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProviderTimeout("No time left for the provider call", provider=policy.provider)
        slot.enter_context(policy.bulkhead_slot())
        if policy.metered:
            hold = spend.admit_current(policy.provider, policy.operation, cost_bound if policy.holds else 0.0, left)
        started = time.perf_counter()
        try:
            permit = policy.permit()
            with cost.within(book):
                pieces, first, first_seconds = _first_piece(policy, start, permit, deadline, input_seconds)
        except BaseException:
            metrics.AI_DURATION.labels(policy.operation, policy.provider).observe(time.perf_counter() - started)
            raise
    except BaseException as exc:
        slot.close()
        spend.settle(hold, book.cost_usd)
        if isinstance(exc, ProviderError) and not isinstance(exc, BudgetExceeded):
            metrics.AI_ERRORS.labels(policy.operation, type(exc).__name__).inc()
        raise
    return ProviderStream(policy, pieces, first, permit=permit, slot=slot, started=started,
                          first_seconds=first_seconds, hold=hold, book=book)


def _first_piece(policy: ProviderPolicy, start: Start, permit: Permit | None, deadline: float,
                 input_seconds: float) -> tuple[Iterator[str], str, float]:
    """Retry starting the stream until it yields its first piece: (the stream, that piece, the answering attempt's
    seconds net of the input's allowance). A failure is judged by the breaker here, as the policy judges a call."""
    attempt_seconds: list[float] = []

    def attempt(remaining: float) -> tuple[Iterator[str], str]:
        began = time.monotonic()
        pieces: Iterator[str] | None = None
        try:
            pieces = start(remaining)
            return pieces, next(pieces)
        except StopIteration:
            # What the adapters raise themselves for an answer with no text: unusable, not retried, and the
            # provider did answer (a bad response does not count for the breaker).
            empty = ProviderBadResponse(f"{policy.provider} returned an empty answer", provider=policy.provider)
            raise empty from None
        except BaseException:
            _close_quietly(pieces, policy)
            raise
        finally:
            attempt_seconds.append(time.monotonic() - began)

    try:
        pieces, first = policy.retry.call(attempt, deadline, provider=policy.provider, operation=policy.operation,
                                          attempts=1 if permit is not None and permit.trial else None,
                                          input_seconds=input_seconds)
    except BaseException as exc:
        if permit is not None:
            policy.record_failure(permit, exc, attempt_seconds[-1] - input_seconds if attempt_seconds else None)
        raise
    return pieces, first, attempt_seconds[-1] - input_seconds


class ProviderStream:
    """The pieces of a started provider stream (the first already fetched); ``answer`` is set once it is exhausted.

    Also a context manager; ``close`` abandons it (the learner went away) and is safe to call at any time, twice.
    ``answer = yield from stream`` works as with the adapter's own generator.
    """

    def __init__(self, policy: ProviderPolicy, pieces: Iterator[str], first: str, *, permit: Permit | None,
                 slot: ExitStack, started: float, first_seconds: float, hold: spend.Hold | None = None,
                 book: cost.Ledger | None = None):
        self.provider = policy.provider
        self.answer: Any = None  # the generator's return value (an LLMAnswer); resilience knows no model types
        self._policy = policy
        self._pieces = pieces
        self._pending: str | None = first
        self._permit = permit
        self._slot = slot
        self._started = started
        self._first_seconds = first_seconds
        self._hold = hold
        self._book = book or cost.Ledger()
        self._lock = threading.Lock()
        self._ended = False

    def __iter__(self) -> ProviderStream:
        return self

    def __next__(self) -> str:
        if self._pending is not None:
            piece, self._pending = self._pending, None
            return piece
        if self._ended:
            raise StopIteration(self.answer)
        try:
            with cost.within(self._book):
                piece = next(self._pieces)
        except StopIteration as stop:
            self.answer = stop.value
            self._end(None)
            raise StopIteration(self.answer) from None
        except BaseException as exc:
            if isinstance(exc, Exception):  # not the interpreter leaving (KeyboardInterrupt, SystemExit)
                record_decision(self.provider, self._policy.operation, "stream_failed", error=type(exc).__name__)
            if isinstance(exc, ProviderError):
                metrics.AI_ERRORS.labels(self._policy.operation, type(exc).__name__).inc()
            self._end(exc)
            raise
        return piece

    def close(self) -> None:
        """Abandon the stream: end the provider's request, free the slot, hand the permit back unjudged."""
        self._pending = None
        self._end(None, abandoned=True)

    def __enter__(self) -> ProviderStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        # A stream dropped without close() must not keep its slot, nor a half-open trial permit, until collected
        # by chance: this runs when it is collected, and does nothing when it already ended.
        if getattr(self, "_lock", None) is not None:
            self.close()

    def _end(self, exc: BaseException | None, *, abandoned: bool = False) -> None:
        """Release everything once, however the stream ended: exhausted, failed (exc) or abandoned."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:
            if abandoned:
                with cost.within(self._book):  # an abandoned stream's usage is charged as it closes
                    _close_quietly(self._pieces, self._policy)
            self._judge(exc, abandoned)
        finally:
            spend.settle(self._hold, self._book.cost_usd)
            self._slot.close()
            metrics.AI_DURATION.labels(self._policy.operation, self.provider).observe(
                time.perf_counter() - self._started)

    def _judge(self, exc: BaseException | None, abandoned: bool) -> None:
        """Tell the breaker what the stream showed; slowness is the wait for the first piece, not the answer's
        length. An abandoned stream shows nothing about the provider."""
        permit, breaker = self._permit, self._policy.breaker
        if permit is None or breaker is None:
            return
        if abandoned:
            breaker.release(permit)
        elif exc is None:
            breaker.record(permit, failed=False, seconds=self._first_seconds)
        else:
            self._policy.record_failure(permit, exc, self._first_seconds)


def _close_quietly(pieces: Iterator[str] | None, policy: ProviderPolicy) -> None:
    """Close a provider's generator (its finally ends the HTTP request); a failure to close is logged, not raised,
    so that releasing the rest never depends on it."""
    close = getattr(pieces, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception as exc:  # noqa: BLE001 - e.g. closed from another thread while it reads: nothing to add
        logger.warning("could not close a provider stream", extra={"provider": policy.provider,
                                                                   "error": type(exc).__name__})
