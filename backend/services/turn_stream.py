"""A learner's turn answered as a stream: the reply's pieces as the provider sends them, then both stored messages.

Everything that can fail before the first piece (no such conversation, another turn in progress, the key reused
with another body, every provider down) fails before the stream starts, as an ordinary error response. After the
first piece nothing is retried or switched: a failure then ends the stream with an error event, and nothing is
stored. Each stream holds one of the worker's threads for its whole length, so a worker serves at most
STREAM_MAX_CONCURRENCY at once; beyond it, 503 with Retry-After.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

from backend.errors import AppError, ProviderError, ProviderNotConfigured, ServiceUnavailable
from backend.llm.client import input_text
from backend.observability import cost, metrics
from backend.observability.decisions import record_decision
from backend.resilience import spend
from backend.resilience.bulkhead import Bulkhead
from backend.resilience.streams import ProviderStream, open_stream
from backend.schemas.caller import Caller
from backend.services.language_model import may_fall_back
from backend.services.turn_types import Begun, TurnRequest, TurnResult
from backend.services.turns import TurnService

logger = logging.getLogger(__name__)
Event = tuple[str, dict[str, Any]]


class TurnStreams:
    """Streamed turns, at most ``limit`` at once in this process."""

    def __init__(self, turns: TurnService, limit: int):
        self._turns = turns
        self.slots = Bulkhead("streams", limit, retry_after=2.0)

    def open(self, caller: Caller, conversation_id: str, request: TurnRequest) -> TurnEvents:
        """The turn's events (``delta``..., then ``done`` or ``error``), with the provider already answering; a
        repeated Idempotency-Key gets the earlier answer as one ``done``."""
        try:
            self.slots.acquire()
        except ProviderError:
            raise ServiceUnavailable(f"Too many streamed replies in progress ({self.slots.limit} per worker); "
                                     "retry shortly or ask without streaming", retry_after=2.0) from None
        try:
            begun = self._turns.begin(caller, conversation_id, request)
        except BaseException:
            self.slots.release()
            raise
        if isinstance(begun, TurnResult):
            self.slots.release()
            metrics.CONVERSATION_TURNS.labels("replayed", "stream").inc()
            return TurnEvents(iter([("done", begun.body())]))
        try:
            self._turns.prepare(begun)
            stream = self._first_provider(begun)
        except BaseException:
            metrics.CONVERSATION_TURNS.labels("failed", "stream").inc()
            self._turns.abandon(begun)
            self.slots.release()
            raise
        return TurnEvents(self._events(begun, stream), on_unstarted=lambda: self._end(begun, stream, False))

    def _first_provider(self, begun: Begun) -> ProviderStream:
        """The stream of the first provider that starts answering."""
        system, messages = self._turns.prompt(begun)
        failure: ProviderError | None = None
        for route in self._turns.replies:
            def start(timeout: float, client=route.client) -> Iterator[str]:
                return client.stream_text(system=system, messages=messages, timeout=timeout)

            try:
                with cost.charging(begun.book):
                    return open_stream(route.policy, start, deadline=begun.deadline,
                                       cost_bound=route.client.cost_bound(input_text(system, messages)))
            except ProviderError as exc:
                if not may_fall_back(exc):
                    raise
                failure = failure or exc
                record_decision(route.policy.provider, route.policy.operation, "fell_back", error=type(exc).__name__)
        raise failure or ProviderNotConfigured(self._turns.not_configured)

    def _events(self, begun: Begun, stream: ProviderStream) -> Iterator[Event]:
        """Pieces as they come, then the stored turn; an error event (nothing stored) if it fails after starting.
        Closed early (the learner went away), it stores nothing and frees the lease and the slot."""
        finished = False
        try:
            pieces: list[str] = []
            iterator = iter(stream)
            while True:
                try:
                    with cost.charging(begun.book):
                        piece = next(iterator)
                except StopIteration:
                    break
                pieces.append(piece)
                yield "delta", {"text": piece}
            with spend.paying(begun.account):  # the request has returned; its caller still pays for speech, summary
                result = self._turns.finish(begun, "".join(pieces), stream.provider)
            finished = True
            metrics.CONVERSATION_TURNS.labels("answered", "stream").inc()
            yield "done", result.body()
        except AppError as exc:
            metrics.CONVERSATION_TURNS.labels("stream_failed", "stream").inc()
            logger.warning("streamed turn failed after it began", extra={"error_type": type(exc).__name__})
            yield "error", {"code": exc.code, "message": exc.message}
        finally:
            self._end(begun, stream, finished)

    def _end(self, begun: Begun, stream: ProviderStream, finished: bool) -> None:
        """Close the provider's stream, give the lease back unless the turn was stored, free the slot."""
        with cost.charging(begun.book):  # an abandoned stream's usage is charged as it closes
            stream.close()
        if not finished:
            self._turns.abandon(begun)
        self.slots.release()


class TurnEvents:
    """The events of one streamed turn. ``close()`` always frees what the turn holds, even when the response was
    never iterated (a generator that never started does not run its ``finally`` when closed)."""

    def __init__(self, events: Iterator[Event], on_unstarted: Callable[[], None] | None = None):
        self._events = events
        self._on_unstarted = on_unstarted
        self._started = False
        self._closed = False

    def __iter__(self) -> "TurnEvents":
        return self

    def __next__(self) -> Event:
        self._started = True
        return next(self._events)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._started and self._on_unstarted is not None:
            self._on_unstarted()
        close = getattr(self._events, "close", None)
        if close is not None:
            close()
