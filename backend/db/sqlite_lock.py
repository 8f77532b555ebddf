"""Waiting for SQLite's write lock in fine steps, for the database's BEGIN IMMEDIATE and the embedded job queue.

SQLite's own busy handler (what a connection's busy timeout runs) sleeps 1, 2, 5, 10, 15, 20, 25... ms between
tries, so a write lock freed after 4 ms is taken after 8 ms and one freed after 9 ms only after 18 ms: with job
workers writing a few short transactions a second, that back-off, not the time the lock was held, made the tail of
a job's enqueue. Here a refused try is repeated WRITE_POLL_SECONDS apart instead, up to the same bound; only a try
that holds nothing yet (BEGIN IMMEDIATE, or one autocommit statement) may be repeated, and the connection's busy
timeout is off just for those tries."""
from __future__ import annotations

import sqlite3
import time
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")

# The pauses between tries, the last one repeated: under a millisecond, as the workers' writes are that short.
WRITE_POLL_SECONDS = (0.0002, 0.0005, 0.001)


def locked(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused because another connection holds the lock (SQLITE_BUSY and its extended codes)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


def write_locked(connection: Any, attempt: Callable[[], T], *, busy_ms: int) -> T:
    """``attempt()`` (a write that holds nothing until it succeeds) on ``connection``, tried again while another
    connection holds the write lock, for at most ``busy_ms``; the last refusal is raised. The connection's busy
    timeout is 0 during the tries and ``busy_ms`` again afterwards."""
    deadline = time.monotonic() + busy_ms / 1000
    connection.execute("PRAGMA busy_timeout=0")
    try:
        for pause in _pauses():
            try:
                return attempt()
            except sqlite3.OperationalError as exc:
                left = deadline - time.monotonic()
                if not locked(exc) or left <= 0:
                    raise
            time.sleep(min(pause, left))
        raise AssertionError("unreachable")  # _pauses never ends
    finally:
        connection.execute(f"PRAGMA busy_timeout={busy_ms}")


def _pauses() -> Iterator[float]:
    yield from WRITE_POLL_SECONDS
    while True:
        yield WRITE_POLL_SECONDS[-1]
