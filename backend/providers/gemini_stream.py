"""Gemini's streamed answers: the whole stream bounded by one deadline, every failure mapped, usage charged once.

The SDK's timeout applies to each read, so a stream that keeps trickling, or stalls just before the deadline,
would outlive it. Two things bound it here: each read's own timeout is at most the time left when the request
goes out, and a watchdog thread shuts down the stream's socket when the deadline passes, which ends a blocked
read at once (the reader then sees the connection end and reports a timeout). Between chunks the deadline is
checked again, so a chunk that arrives late is not passed on.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import socket
import threading
import time
from contextvars import ContextVar
from typing import Callable, Generator, Iterator

import httpx2
from google.genai import types

from backend.errors import ProviderBadResponse, ProviderServerError, ProviderTimeout
from backend.llm.client import LLMAnswer
from backend.observability.cost import TokenPrices
from backend.providers.gemini_errors import map_failure
from backend.providers.gemini_response import (
    PROVIDER,
    charge_usage,
    finish_of,
    refuse_blocked_finish,
    refuse_blocked_prompt,
    text_of,
    usage_of,
)

logger = logging.getLogger(__name__)
_opening: ContextVar[StreamWatch | None] = ContextVar("gemini_stream_opening", default=None)


class StreamWatch:
    """One stream's deadline and its HTTP response, which the watchdog cuts when the deadline passes."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.expired = False
        self._response: httpx2.Response | None = None
        self._done = False
        self._lock = threading.Lock()

    def attach(self, response: httpx2.Response) -> None:
        """Remember the response whose headers just arrived (cut at once if the deadline already passed)."""
        with self._lock:
            if self._done:
                return
            self._response = response
            late = self.expired
        if late:
            _shut_down(response)

    def expire(self) -> None:
        """The deadline passed: end whatever read is blocked on the stream."""
        with self._lock:
            if self._done:
                return
            self.expired = True
            response = self._response
        if response is not None:
            _shut_down(response)

    def finish(self) -> None:
        """The stream is over (answered, failed or abandoned): release its connection."""
        with self._lock:
            self._done = True
            response, self._response = self._response, None
        if response is not None:
            response.close()  # at once, not when the SDK's abandoned generators are collected


def _shut_down(response: httpx2.Response) -> None:
    """Shut the socket under a streamed response: a read blocked on it in another thread returns at once."""
    if response.is_closed:  # read to its end: its connection may already serve another request
        return
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is None:  # not a plain HTTP/1.1 connection: the per-read timeout still ends the wait
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def on_response(response: httpx2.Response) -> None:
    """httpx event hook: hand the response of a stream being opened to its watch (other calls pass through)."""
    watch = _opening.get()
    if watch is not None:
        watch.attach(response)


class Watchdog:
    """One thread per process that expires stream watches at their deadlines (started on first use)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, StreamWatch]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, watch: StreamWatch) -> None:
        with self._wake:
            heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
            if self._thread is None or not self._thread.is_alive():  # first use, or a new process after a fork
                self._thread = threading.Thread(target=self._run, name="gemini-stream-deadlines", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap:
                    self._wake.wait()
                deadline, _, watch = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                heapq.heappop(self._heap)
            watch.expire()  # a finished watch ignores it


WATCHDOG = Watchdog()


def stream_answer(open_stream: Callable[[float], Iterator[types.GenerateContentResponse]], *, seconds: float,
                  read_seconds: float, model: str, prices: TokenPrices) -> Generator[str, None, LLMAnswer]:
    """Yield the answer's text as it arrives, within ``seconds`` in all; return the whole LLMAnswer.

    ``open_stream(per_read_seconds)`` starts the SDK's stream. The clock starts with the first ``next()``, when
    the request goes out. Failures raise ProviderError subclasses, also after pieces were yielded; a stream that
    ends without a finish reason is incomplete: a failure of the server (ProviderServerError: transient and counted
    by the breaker, as a reset is, and as the OpenAI-compatible adapter judges it), since the body ended cleanly but
    early, as when a server dies mid-answer or a proxy's timeout closes the response. The last usage Gemini reported
    is charged once, when the stream ends for whatever reason (a caller who stops early pays what was reported).
    """
    watch = StreamWatch(time.monotonic() + seconds)
    WATCHDOG.add(watch)
    chunks = open_stream(min(seconds, read_seconds))
    pieces: list[str] = []
    finish, usage, version = "", None, None
    try:
        while True:
            try:
                chunk = _next(chunks, watch)
            except StopIteration:
                break
            except Exception as exc:
                if finish:  # the answer was complete: a failure after its last piece loses nothing
                    logger.warning("Gemini stream failed after its finish", extra={"error": type(exc).__name__})
                    break
                raise (_timeout(seconds) if watch.expired else map_failure(exc, seconds=seconds)) from exc
            usage = chunk.usage_metadata or usage
            version = chunk.model_version or version
            refuse_blocked_prompt(chunk)
            finish = finish_of(chunk) or finish
            refuse_blocked_finish(finish)
            if watch.expired or time.monotonic() > watch.deadline:
                raise _timeout(seconds)
            text = text_of(chunk)
            if text:
                pieces.append(text)
                yield text
        if not finish:
            if watch.expired:
                raise _timeout(seconds)
            raise ProviderServerError("Gemini's stream ended without a finish reason: the answer is incomplete",
                                      provider=PROVIDER)
        if not "".join(pieces).strip():
            raise ProviderBadResponse(f"Gemini returned an empty answer ({finish})", provider=PROVIDER)
        return LLMAnswer(text="".join(pieces), finish_reason=finish, model=version or model,
                         usage=usage_of(usage))
    finally:
        close = getattr(chunks, "close", None)  # the SDK's generator: ends its request too
        if close is not None:
            close()
        watch.finish()
        if usage is not None:
            charge_usage(prices, usage_of(usage))


def _next(chunks: Iterator[types.GenerateContentResponse], watch: StreamWatch) -> types.GenerateContentResponse:
    """The next chunk, with the watch known to the event hook while the SDK sends the request."""
    token = _opening.set(watch)
    try:
        return next(chunks)
    finally:
        _opening.reset(token)


def _timeout(seconds: float) -> ProviderTimeout:
    return ProviderTimeout(f"Gemini's stream did not finish within {seconds:.1f} s", provider=PROVIDER)

