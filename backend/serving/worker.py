"""gunicorn's gthread worker, changed to give a thread only to a client that has sent its whole request head.

gunicorn 27 hands each accepted connection to a thread, which waits up to 5 s for a first byte and then reads the
request line and headers with no time limit, and it has no setting to bound that (its `timeout` is the worker
heartbeat). A client sending one header line every few seconds holds a thread for as long as it likes; a few
dozen of them starve every request, /health included. Here the main loop reads each request head without
blocking, as a buffering proxy does, and queues the connection for a thread only once the head is complete; a
head not complete within HEADER_TIMEOUT_SECONDS closes the connection (408). In the thread, every read is bounded
as well: what is left of the head by the same deadline, the body by BODY_TIMEOUT_SECONDS in all and
HEADER_TIMEOUT_SECONDS of silence. And the graceful close after a last response, which gunicorn does on its
main loop (up to 2 s per connection, stalling every other one), is done there without blocking. A buffering
reverse proxy in front (config/nginx/) remains the first line.

On SIGTERM the worker drains first (backend/serving/drain.py): /health/ready says 503 while it still serves for
SHUTDOWN_DRAIN_SECONDS, then it stops accepting and finishes what is in flight. And it accepts only while it holds
no more connections than the other workers (backend/serving/spread.py), so kept-alive clients spread evenly.

Only plain HTTP/1.1 is served this way (TLS and HTTP/2 end at the proxy). No Flask here: this is below the app.
It overrides gthread's hooks (accept, enqueue_req, finish_request, murder_pending, _cap_keepalive, handle_exit,
handle_request, set_accept_enabled, wait_for_and_dispatch_events, TConn.init) of the pinned gunicorn; on an upgrade,
tests/integration/test_slow_clients.py, test_draining.py and test_connection_spread.py show whether they still hold.
"""
from __future__ import annotations

import selectors
import socket
import time
from functools import partial

from gunicorn import util
from gunicorn.http.errors import NoMoreData
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker

from backend.serving.drain import DrainingWorker
from backend.serving.spread import SpreadingWorker

# What the main loop buffers of one head at most (a waiting connection costs this memory, no thread); a longer
# head goes to a thread, which reads the rest within the same deadline.
HEAD_BUFFER_LIMIT = 64 * 1024
_RECV_SIZE = 8192
# A head ends with an empty line. gunicorn refuses a bare LF, so a head using them is handed over at once too.
_HEAD_ENDS = (b"\n\r\n", b"\n\n")
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
# gunicorn's graceful close (util.close_graceful): after its FIN, read what the client still sends for this long,
# up to this much, so that unread request bytes do not make the kernel reset the connection under the response.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024


class ReadBudget:
    """How long the current phase of one connection (reading a head, or a body) may still read."""

    __slots__ = ("deadline", "idle", "phase")

    def __init__(self) -> None:
        self.phase = "head"
        self.deadline = float("inf")
        self.idle: float | None = None

    def start(self, phase: str, seconds: float, idle: float | None = None) -> None:
        """Begin a phase that must end within `seconds`, each read waiting at most `idle`."""
        self.phase, self.deadline, self.idle = phase, time.monotonic() + seconds, idle

    def recv_timeout(self) -> float:
        """Seconds the next read may wait; NoMoreData (a quiet close in gunicorn) once the phase is over time."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise NoMoreData()
        return remaining if self.idle is None else min(remaining, self.idle)


class BoundedUnreader(SocketUnreader):
    """gunicorn's socket reader with every recv bounded by the connection's ReadBudget."""

    def __init__(self, sock: socket.socket, budget: ReadBudget) -> None:
        super().__init__(sock)
        self.budget = budget

    def chunk(self, size_hint=None):  # noqa: D102  (gunicorn's signature)
        limit = self.budget.recv_timeout()
        prior = self.sock.gettimeout()
        # gunicorn bounds some reads itself (the drain before keep-alive): the shorter bound wins, and its own
        # timeout stays its own (it expects TimeoutError there).
        ours = prior is None or limit < prior
        self.sock.settimeout(limit if ours else prior)
        try:
            return super().chunk(size_hint)
        except TimeoutError:
            if ours:
                # As a disconnect: the app sees ClientDisconnected (400), gunicorn closes without a traceback.
                raise NoMoreData() from None
            raise
        finally:
            self.sock.settimeout(prior)


class BoundedConn(TConn):
    """A connection with a ReadBudget, carrying what the main loop read of its next request."""

    def __init__(self, cfg, sock, client, server, *, linger) -> None:
        super().__init__(cfg, sock, client, server)
        self.budget = ReadBudget()
        self.head = bytearray()
        self.drained = 0
        self._linger = linger

    def close(self, graceful: bool = False) -> None:
        """Close now, or gracefully through the worker's main loop (gunicorn's own graceful close blocks it)."""
        if graceful:
            self._linger(self)
        else:
            super().close()

    def init(self) -> None:
        """gunicorn's set-up (runs before each request in the thread), then bounded reads fed with the head."""
        super().init()
        if not isinstance(self.parser.unreader, BoundedUnreader):
            self.parser.unreader = BoundedUnreader(self.sock, self.budget)
        if self.head:
            self.parser.unreader.unread(bytes(self.head))
            self.head.clear()


class BoundedThreadWorker(DrainingWorker, SpreadingWorker, ThreadWorker):
    """gthread worker whose threads only ever wait on clients within HEADER_/BODY_TIMEOUT_SECONDS, that drains
    before it stops, and that takes no more than its share of connections."""

    header_timeout = 10.0
    body_timeout = 60.0

    @classmethod
    def configured(cls, *, header_timeout: float, body_timeout: float) -> type[BoundedThreadWorker]:
        """This worker with the service's timeouts (for worker_class in config/gunicorn.conf.py)."""
        return type(cls.__name__, (cls,), {"header_timeout": header_timeout, "body_timeout": body_timeout})

    @classmethod
    def check_config(cls, cfg, log) -> None:  # noqa: D102  (gunicorn's hook)
        if cfg.is_ssl or "h2" in cfg.http_protocols or cfg.protocol != "http":
            raise RuntimeError(f"{cls.__name__} serves plain HTTP/1.1 only: end TLS and HTTP/2 at the proxy")
        super().check_config(cfg, log)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.awaiting_heads: dict[BoundedConn, None] = {}  # in deadline order (one timeout for all)
        self.lingering: dict[BoundedConn, None] = {}  # closing gracefully, in deadline order
        # Requests handed to threads, running or queued. Past its threads and a small margin the worker stops
        # accepting, so a busy worker leaves new connections to the others; connections still sending their
        # head cost no thread and do not count (worker_connections bounds all connections together).
        self.in_threads = 0
        self.thread_limit = self.cfg.threads + max(4, self.cfg.threads // 8)

    def accept(self, listener) -> None:
        """Take a connection and read its head in the main loop (gunicorn would give it a thread at once)."""
        try:
            sock, client = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        self.nr_conns += 1
        self.await_head(BoundedConn(self.cfg, sock, client, listener.getsockname(), linger=self.linger))
        self.accepted()

    def on_client_socket_readable(self, conn, client) -> None:
        """A kept-alive connection starts its next request: read its head in the main loop too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.await_head(conn)

    def await_head(self, conn: BoundedConn) -> None:
        """Wait, without a thread, until the connection has sent a whole head (or its time is up)."""
        conn.budget.start("head", self.header_timeout)
        self.awaiting_heads[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_head_readable, conn))

    def on_head_readable(self, conn: BoundedConn, _sock) -> None:
        """Take what arrived; queue the connection for a thread once its head is complete."""
        data = _recv_ready(conn.sock)
        if data is None:
            return
        if not data:
            self.drop_head(conn)
            return
        searched = max(0, len(conn.head) - 2)
        conn.head += data
        if len(conn.head) >= HEAD_BUFFER_LIMIT or any(conn.head.find(end, searched) >= 0 for end in _HEAD_ENDS):
            del self.awaiting_heads[conn]
            self.poller.unregister(conn.sock)
            conn.data_ready = True  # gunicorn's wait for a first byte is over
            self.enqueue_req(conn)

    def drop_head(self, conn: BoundedConn, answer: bytes = b"") -> None:
        """Close a connection that is still sending its head."""
        del self.awaiting_heads[conn]
        self.poller.unregister(conn.sock)
        if answer:
            try:
                conn.sock.send(answer)  # non-blocking: best effort, never waits on the client
            except OSError:
                pass
        self.nr_conns -= 1
        conn.close()

    def linger(self, conn: BoundedConn) -> None:
        """Close gracefully: FIN now, then read (on the main loop, never waiting) until the client closes too."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            util.close(conn.sock)
            return
        if len(self.lingering) >= self.worker_connections:
            util.close(conn.sock)  # too many already: a possible reset rather than unbounded sockets
            return
        conn.sock.setblocking(False)
        conn.budget.start("linger", LINGER_SECONDS)
        self.lingering[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_linger_readable, conn))

    def on_linger_readable(self, conn: BoundedConn, _sock) -> None:
        """Discard what a closing client still sends; close once it is done, or has sent too much."""
        data = _recv_ready(conn.sock)
        if data is None:
            return
        conn.drained += len(data)
        if not data or conn.drained >= LINGER_MAX_BYTES:
            self.end_linger(conn)

    def end_linger(self, conn: BoundedConn) -> None:
        """Close a gracefully closing connection for good."""
        del self.lingering[conn]
        self.poller.unregister(conn.sock)
        util.close(conn.sock)

    def murder_pending(self) -> None:
        """gunicorn's clean-up (and the drain's), then close what is past its deadline."""
        super().murder_pending()
        now = time.monotonic()
        for conn in list(self.awaiting_heads):
            if conn.budget.deadline <= now:
                self.drop_head(conn, _REQUEST_TIMEOUT if conn.head else b"")
            elif self.alive:
                break  # in deadline order until the worker stops (_cap_keepalive shortens some)
        for conn in list(self.lingering):
            if conn.budget.deadline > now:
                break
            self.end_linger(conn)

    def _cap_keepalive(self, deadline: float) -> None:
        """Stopping: gunicorn closes kept-alive connections by `deadline`; a connection that has not begun its head
        gets as long, since its request may be on its way (accepted just before the worker stopped)."""
        super()._cap_keepalive(deadline)
        for conn in self.awaiting_heads:
            if not conn.head:
                conn.budget.deadline = min(conn.budget.deadline, deadline)

    def enqueue_req(self, conn) -> None:
        """Hand a connection to the threads; a request pipelined behind the last one starts its head phase."""
        if conn.budget.phase != "head":
            conn.budget.start("head", self.header_timeout)
        self.in_threads += 1
        if self.in_threads >= self.thread_limit:
            self.set_accept_enabled(False)
        super().enqueue_req(conn)

    def finish_request(self, conn, fs) -> None:  # noqa: D102  (gunicorn's hook, on the main loop)
        self.in_threads -= 1
        super().finish_request(conn, fs)

    def set_accept_enabled(self, enabled: bool) -> None:
        """Accept only while the threads have room (gunicorn asks again on every turn of its loop)."""
        super().set_accept_enabled(enabled and self.in_threads < self.thread_limit)

    def stands_aside(self) -> bool:
        """Draining: leave new connections to workers that are not (backend/serving/spread.py)."""
        return self.drain is not None and self.drain.draining

    def handle_request(self, req, conn):  # noqa: D102  (gunicorn's hook, in the thread)
        # The head is in: from here the body must arrive within BODY_TIMEOUT_SECONDS, never silent for longer
        # than HEADER_TIMEOUT_SECONDS.
        conn.budget.start("body", self.body_timeout, idle=self.header_timeout)
        return super().handle_request(req, conn)


def _recv_ready(sock: socket.socket) -> bytes | None:
    """What a non-blocking socket has for us: None when nothing yet, b"" when the client closed (or failed)."""
    try:
        return sock.recv(_RECV_SIZE)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""
