"""Deadlines on every wait for a PostgreSQL server: libpq has no read timeout, so a server that stops answering
without closing its connections (a crashed host, a partition, a stalled process) would hold a request, and the thread
serving it, for as long as TCP keeps the socket. Hand-written: neither SQLAlchemy nor psycopg offers a client-side
deadline on a statement, and a socket shut from a watchdog thread is the one interruption libpq reports cleanly."""
from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from sqlalchemy.engine import Engine


class Watchdog:
    """Shuts the socket of a PostgreSQL connection whose server has not answered in time. libpq waits on a silent
    server (a crashed host, a partition, a stalled process or a proxy whose database is gone) for as long as TCP does,
    and statement_timeout is enforced by the server itself; a shut socket ends the wait with a disconnect error (503,
    and the pool drops the connection)."""

    IDLE_EXIT_SECONDS = 30.0  # the thread ends after this long with nothing to watch (and starts again when needed)
    # The thread looks every TICK rather than being woken per statement: a wake-up (a notify, a thread switch, the
    # GIL handed over) on each of a turn's dozen statements cost more than the statements themselves. Deadlines are
    # half a second and more, so a tenth of a second late is still in time.
    TICK_SECONDS = 0.1

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, int]] = {}  # key -> (deadline, socket descriptor)
        self._keys = itertools.count()
        self._thread: threading.Thread | None = None

    @contextmanager
    def deadline(self, dbapi_connection: Any, seconds: float) -> Iterator[None]:
        """Shut the connection's socket if the block is still waiting after ``seconds``."""
        try:
            fileno = int(dbapi_connection.fileno())
        except Exception:  # already closed or broken: the driver fails fast by itself
            yield
            return
        key = next(self._keys)
        with self._cond:
            self._armed[key] = (time.monotonic() + seconds, fileno)
            if self._thread is None or not self._thread.is_alive():  # also after a fork, which keeps no threads
                self._thread = threading.Thread(target=self._watch, name="db-watchdog", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._cond:  # the shut happens under this lock: never on a descriptor already given back
                self._armed.pop(key, None)

    def _watch(self) -> None:
        with self._cond:
            idle_since: float | None = None
            while True:
                now = time.monotonic()
                for key, (deadline, fileno) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[key]
                        _shut(fileno)
                if self._armed:
                    idle_since = None
                elif idle_since is not None and now - idle_since >= self.IDLE_EXIT_SECONDS:
                    self._thread = None
                    return
                else:
                    idle_since = idle_since or now
                self._cond.wait(self.TICK_SECONDS)


def _shut(fileno: int) -> None:
    """End every wait on a connected socket (a duplicate is closed; the driver's descriptor stays its own)."""
    try:
        duplicate = socket.socket(fileno=os.dup(fileno))
    except OSError:
        return
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        duplicate.close()


def guard_postgres(engine: Engine, watchdog: Watchdog, *, statement_seconds: float, ping_seconds: float) -> None:
    """Give every wait on the server a deadline: statements, commits and rollbacks, and the pool's liveness check."""
    dialect = engine.dialect

    def guarded(name: str, seconds: float, on_cursor: bool) -> None:
        method = getattr(dialect, name)

        def call(target: Any, *args: Any, **kwargs: Any) -> Any:
            with watchdog.deadline(target.connection if on_cursor else target, seconds):
                return method(target, *args, **kwargs)

        setattr(dialect, name, call)

    for name in ("do_execute", "do_execute_no_params", "do_executemany"):
        guarded(name, statement_seconds, on_cursor=True)
    for name in ("do_commit", "do_rollback"):
        guarded(name, statement_seconds, on_cursor=False)
    guarded("do_ping", ping_seconds, on_cursor=False)
