"""Draining: on SIGTERM a web worker first sends load balancers away, then stops as gunicorn does.

gunicorn's gthread worker stops accepting as soon as it gets SIGTERM. Behind a load balancer that is too early: the
balancer keeps sending new connections until its health checks see the instance go, and clients keep pooled
keep-alive connections to it. So SIGTERM begins a window of SHUTDOWN_DRAIN_SECONDS in which /health/ready answers
503 (backend/health/routes.py), the worker still accepts and serves, and every response says `Connection: close`,
so that pooled clients reconnect through the balancer and are sent elsewhere. When the window ends the worker does
what gthread does: it stops accepting and lets requests and streams in flight finish within graceful_timeout
(config/gunicorn.conf.py counts the window in it).

Idle kept-alive connections are not cut when the window begins: a client may be sending on one at that very moment,
and a close racing a request is a failed request. Used during the window, they are answered and closed; left idle,
gunicorn closes them as usual (their keep-alive timeout, or its short linger once the worker stops).

A second SIGTERM changes nothing, as with gunicorn (a signal sent to the whole process group, by systemd or a
shell, reaches each worker twice: from the sender and from the master); SIGINT and SIGQUIT still quit at once.
SHUTDOWN_DRAIN_SECONDS=0 is gunicorn's own stop. On SIGHUP the master starts new workers and sends the old ones
SIGTERM: they drain while the new ones boot, which only shortens the gap in accepting.

No Flask and no gunicorn import here: the composition root owns a Drain (the app reads it), and config/gunicorn.conf.py
hands the same object to the worker.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gunicorn.workers.gthread import ThreadWorker as _GThreadWorker
else:
    _GThreadWorker = object


class Drain:
    """Whether this process is draining before it stops, and until when it still accepts."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: float | None = None  # time.monotonic() of the SIGTERM

    @property
    def draining(self) -> bool:
        """True from the SIGTERM on (the window, then the finishing of requests in flight)."""
        return self.started is not None

    def begin(self) -> bool:
        """Start the window now; False if it had begun already. Called in a signal handler: it only assigns."""
        if self.started is not None:
            return False
        self.started = time.monotonic()
        return True

    def remaining(self) -> float:
        """Seconds left in the window (all of it before the SIGTERM, 0 once it is over)."""
        if self.started is None:
            return self.seconds
        return max(0.0, self.started + self.seconds - time.monotonic())

    def over(self) -> bool:
        """The window has begun and ended: stop accepting."""
        return self.started is not None and self.remaining() <= 0


class DrainingWorker(_GThreadWorker):
    """What draining changes in gunicorn's gthread worker: a mixin, listed before ThreadWorker."""

    drain: Drain | None = None  # given by config/gunicorn.conf.py's post_worker_init; None: gunicorn's stop
    alive: bool  # gunicorn's: the worker's loop runs while it is true

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: begin the window (a signal handler: nothing here blocks or takes a lock)."""
        drain = self.drain
        if drain is None or not self.alive:
            super().handle_exit(sig, frame)
            return
        if not drain.begin():
            return  # a second SIGTERM
        if drain.seconds <= 0:
            super().handle_exit(sig, frame)
            return
        self.method_queue.defer(self.drain_begun)  # wakes the main loop, which logs (a handler must not)

    def drain_begun(self) -> None:
        """On the main loop, just after the SIGTERM."""
        assert self.drain is not None
        self.log.info("draining for %s s: /health/ready answers 503 and responses close their connections",
                      self.drain.seconds)

    def murder_pending(self) -> None:
        """gthread's clean-up on each turn of its loop (at least once a second); then, once the window is over,
        stop as gthread's SIGTERM does: accept no more, finish what is in flight."""
        super().murder_pending()
        if self.alive and self.drain is not None and self.drain.over():
            self.log.info("drain window over: no longer accepting; finishing the requests in flight")
            self.alive = False

    def handle_request(self, req: Any, conn: Any) -> Any:
        """While draining, every response closes its connection (`Connection: close`), in the window too: the
        client's next request goes through the load balancer again instead of to a socket about to close."""
        if self.drain is not None and self.drain.draining:
            req.force_close()
        return super().handle_request(req, conn)
