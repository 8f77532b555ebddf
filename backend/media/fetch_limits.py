"""How many and how long: the concurrency slot, the bounded DNS lookup and the watchdog of one audio_url fetch."""
from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable

from backend.media.fetch_rules import refuse
from backend.resilience.bulkhead import Bulkhead

Resolver = Callable[..., list]


class Slot:
    """One bulkhead slot, given back when the last of its holders (the fetch, an abandoned DNS lookup) lets go.

    Holding the slot while a timed-out lookup still runs keeps the number of threads a fetch can leave behind
    within the bulkhead: a resolver that hangs makes further fetches fail fast instead of piling up threads.
    """

    def __init__(self, bulkhead: Bulkhead | None):
        if bulkhead is not None:
            bulkhead.acquire()  # 503 with Retry-After when full, without waiting
        self._bulkhead = bulkhead
        self._holders = 1
        self._lock = threading.Lock()

    def share(self) -> None:
        """Add a holder."""
        with self._lock:
            self._holders += 1

    def release(self) -> None:
        """Drop a holder; the last one gives the slot back."""
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last and self._bulkhead is not None:
            self._bulkhead.release()


def lookup(resolver: Resolver, host: str, port: int, deadline: float, slot: Slot) -> list:
    """getaddrinfo within the fetch's deadline: the system resolver has no timeout of its own we could pass."""
    answer: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            answer["infos"] = resolver(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except BaseException as exc:  # handed to the waiting request thread
            answer["error"] = exc
        finally:
            done.set()
            slot.release()

    slot.share()
    try:
        threading.Thread(target=run, name="audio-url-dns", daemon=True).start()
    except BaseException:
        slot.release()
        raise
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise refuse("could not fetch audio_url: host name lookup timed out")
    error = answer.get("error")
    if isinstance(error, (OSError, UnicodeError)):
        raise refuse("could not fetch audio_url: host name could not be resolved")
    if error is not None:
        raise error
    return answer["infos"]


class Watchdog:
    """Cuts a connection at the overall deadline, or once its body arrives slower than the minimum rate.

    Socket timeouts bound each wait, not the whole: a server sending a byte now and then (headers or body) would
    hold the thread for ever. The rate rule allows `grace` seconds from the request plus 1/min_rate seconds per
    body byte received; falling behind that allowance ends the download, whatever the pauses in between.
    """

    def __init__(self, sock: socket.socket, deadline: float, *, min_rate: int = 0, grace: float = 5.0):
        self.received = 0  # body bytes, counted by the reading thread
        self.reason: str | None = None  # "deadline" or "rate" once the watchdog has cut
        self._sock = sock
        self._deadline = deadline
        self._min_rate = min_rate
        self._rate_due = time.monotonic() + grace
        self._stopped = False
        self._changed = threading.Condition()
        threading.Thread(target=self._run, name="audio-url-watchdog", daemon=True).start()

    def failure(self) -> Exception:
        """The error to raise once the watchdog has cut."""
        if self.reason == "rate":
            return refuse(f"could not fetch audio_url: the download was slower than {self._min_rate} bytes per "
                          "second (AUDIO_URL_MIN_BYTES_PER_SECOND)")
        return refuse("could not fetch audio_url: download took too long")

    def stop(self) -> None:
        """Stop watching; after this the socket is never cut (its owner may close and its number be reused)."""
        with self._changed:
            self._stopped = True
            self._changed.notify()

    def _due(self) -> tuple[float, str]:
        if self._min_rate > 0:
            rate_due = self._rate_due + self.received / self._min_rate
            if rate_due < self._deadline:
                return rate_due, "rate"
        return self._deadline, "deadline"

    def _run(self) -> None:
        with self._changed:
            while not self._stopped:
                # Recomputed on every wake-up: bytes received meanwhile move the rate allowance later.
                due, reason = self._due()
                now = time.monotonic()
                if now >= due:
                    self.reason = reason
                    try:
                        # socket.socket's own shutdown: SSLSocket.shutdown would also unwrap TLS under a reader.
                        socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                self._changed.wait(due - now)
