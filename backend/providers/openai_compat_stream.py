"""The fallback model's streamed answers: the whole stream bounded by one deadline, every failure mapped, the
usage charged once, and the whole answer returned at the end (``answer = yield from client.stream_text(...)``)."""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Callable, Generator

import httpx2

from backend.errors import ProviderBadResponse, ProviderError, ProviderServerError, timeout_for_input
from backend.llm.client import LLMAnswer
from backend.providers.openai_compat_errors import PROVIDER, map_error
from backend.providers.openai_compat_wire import usage_of

logger = logging.getLogger("backend.providers.openai_compat")


def read_stream(stream: Any, *, deadline: float, seconds: float, input_seconds: float, model: str,
                charge: Callable[[dict[str, int]], None]) -> Generator[str, None, LLMAnswer]:
    """Yield the text pieces of an SDK stream already opened (create() raised any HTTP error before the first
    piece), within ``deadline``; return the whole LLMAnswer.

    A stream that ends without a finish reason is a failure of the server (ProviderServerError: transient and
    counted by the breaker, as a reset is): the body ended cleanly but early, as when a server dies mid-answer or
    a proxy's timeout closes the response, and the text is incomplete. A failure after the finish loses only the
    usage and ends the stream normally. Refusals, filtered and empty answers are unusable (ProviderBadResponse)."""
    watchdog = StreamWatchdog(getattr(stream, "response", None), deadline)
    pieces: list[str] = []
    finish: str | None = None
    usage = answered_by = None
    try:
        for chunk in stream:
            # The last chunk carries the usage (include_usage); a server repeating it on others is charged once.
            usage = getattr(chunk, "usage", None) or usage
            answered_by = getattr(chunk, "model", None) or answered_by
            if finish is None and watchdog.expired():
                break
            for choice in chunk.choices or ():
                finish = choice.finish_reason or finish
                delta = choice.delta
                if finish == "content_filter" or (delta is not None and delta.refusal):
                    raise ProviderBadResponse("The fallback model stopped or refused the answer", provider=PROVIDER)
                if delta is not None and delta.content:
                    pieces.append(delta.content)
                    yield delta.content
    except ProviderError:
        raise
    except Exception as exc:
        if finish is not None:  # the answer was complete
            logger.warning("the fallback model's stream failed after its finish", extra={"error": type(exc).__name__})
        elif not watchdog.fired:  # else the cut made the read fail: reported as the timeout below
            raise map_error(exc, seconds=seconds, input_seconds=input_seconds) from exc
    finally:
        watchdog.cancel()
        stream.close()
        if usage is not None:
            charge(usage_of(usage))
    if finish is None and watchdog.fired:
        raise timeout_for_input(f"The fallback model's answer ran past {seconds:.1f} s", provider=PROVIDER,
                                limit=seconds, input_seconds=input_seconds)
    if finish is None:
        raise ProviderServerError("The fallback model's answer ended before it was finished", provider=PROVIDER)
    text = "".join(pieces)
    if not text.strip():
        raise ProviderBadResponse(f"The fallback model returned an empty answer ({finish})", provider=PROVIDER)
    return LLMAnswer(text=text, finish_reason=finish, model=answered_by or model, usage=usage_of(usage))


class StreamWatchdog:
    """Ends a stream at its deadline. The SDK's read timeout bounds each read, not the stream, so a stream that
    stalls or trickles would run past it: a timer shuts the socket down at the deadline, which wakes a read
    blocked in the streaming thread at once (closing the response from another thread does not: the read then
    waits for its own timeout; measured 0.30 s against 5.0 s for a 0.3 s deadline)."""

    def __init__(self, response: httpx2.Response | None, deadline: float):
        self.deadline = deadline
        self.fired = False
        self._response = response
        self._lock = threading.Lock()
        self._done = False
        self._socket = _socket_of(response)
        self._timer: threading.Timer | None = None
        if self._socket is not None:  # else (a transport without sockets) the read timeout is the bound
            self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._cut)
            self._timer.daemon = True
            self._timer.start()

    def expired(self) -> bool:
        """Whether the deadline has passed (checked between chunks, for a stream that keeps trickling)."""
        if time.monotonic() >= self.deadline:
            self.fired = True
        return self.fired

    def _cut(self) -> None:
        with self._lock:
            if self._done or self._socket is None or self._response is None or self._response.is_closed:
                return
            self.fired = True
            try:  # socket.socket's own shutdown, not SSLSocket's, which would also drop its TLS state
                socket.socket.shutdown(self._socket, socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        """Stop the timer; after this returns it never touches the socket."""
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()


def _socket_of(response: httpx2.Response | None) -> socket.socket | None:
    """The response's socket, through the network_stream extension of httpx2/httpcore2."""
    if response is None:
        return None
    try:
        sock = response.extensions["network_stream"].get_extra_info("socket")
    except Exception:  # noqa: BLE001 - no socket to cut: not an error
        return None
    return sock if isinstance(sock, socket.socket) else None
