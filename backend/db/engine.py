"""One worker's database: an engine created on first use (after gunicorn's fork, never shared across one), short
sessions that commit or roll back as a whole, and every failure to reach the database answered as a 503 within
DATABASE_TIMEOUT_SECONDS, logged once per outage rather than per request."""
from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from backend.db.deadline import Watchdog, guard_postgres
from backend.db.sqlite_lock import write_locked
from backend.db.timing import instrument, statement
from backend.errors import DatabaseUnavailable

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5.0
# How long the pool's liveness check (SELECT 1) may take: a server that answers at all answers it in milliseconds.
PING_SECONDS = 0.5
# After the server's own statement_timeout, how long to wait for its error before giving up on the connection.
ANSWER_GRACE_SECONDS = 0.5


class Database:
    """Engine, sessions and health of one worker's database."""

    def __init__(self, url: str, *, pool_size: int = 5, timeout_seconds: float = 2.0):
        self.url = make_url(url)
        self.pool_size = pool_size
        self.timeout_seconds = timeout_seconds
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._down_since: float | None = None  # not None while the last attempt failed: the outage is logged once
        self._state_lock = threading.Lock()

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.url.get_backend_name()

    @property
    def engine(self) -> Engine:
        """The engine, created on first use: in the worker that uses it, after the fork."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        timeout = self.timeout_seconds
        if self.dialect == "sqlite":
            ensure_sqlite_directory(self.url)
            engine = create_engine(self.url, pool_size=self.pool_size, max_overflow=0, pool_timeout=timeout,
                                   connect_args={"timeout": timeout, "check_same_thread": False,
                                                 "isolation_level": None})
            _sqlite_pragmas(engine, busy_ms=int(timeout * 1000))
        else:
            # libpq's connect_timeout is whole seconds (2 at least); the statement and lock timeouts are the server's.
            ms = int(timeout * 1000)
            engine = create_engine(
                self.url, pool_size=self.pool_size, max_overflow=0, pool_timeout=timeout, pool_pre_ping=True,
                pool_recycle=1800,
                connect_args={"connect_timeout": max(2, math.ceil(timeout)),
                              "options": f"-c statement_timeout={ms} -c lock_timeout={ms} "
                                         f"-c idle_in_transaction_session_timeout={max(ms * 10, 60000)}",
                              "application_name": "backend-ai"})
            guard_postgres(engine, Watchdog(), statement_seconds=timeout + ANSWER_GRACE_SECONDS,
                            ping_seconds=min(PING_SECONDS, timeout))
        instrument(engine)
        return engine

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back whole when it raises. ``write`` takes
        SQLite's write lock at the start (BEGIN IMMEDIATE), so two writers wait for each other (up to the busy
        timeout, in sub-millisecond steps) instead of one failing when it upgrades a read lock; PostgreSQL locks rows
        as it goes."""
        try:
            bind = self.engine.execution_options(sqlite_immediate=True) if write else self.engine
            with Session(bind, expire_on_commit=False, autoflush=False) as session:
                with session.begin():
                    yield session
        except (OperationalError, PoolTimeout) as exc:
            raise self._unavailable(exc) from None
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            raise self._unavailable(exc) from None
        self._reachable()

    def ping(self) -> bool:
        """Whether the database answers `SELECT 1` now (health checks)."""
        try:
            with self.session() as session, statement("health.ping"):
                session.execute(text("SELECT 1"))
        except DatabaseUnavailable:
            return False
        return True

    def health(self) -> dict[str, Any]:
        """The database component of /api/health: whether it answers now (learner data needs it; the AI endpoints
        do not, so readiness does not depend on it)."""
        reachable = self.ping()
        report: dict[str, Any] = {"status": "ok" if reachable else "unreachable", "dialect": self.dialect,
                                  "pool_size": self.pool_size}
        if self._engine is not None and hasattr(self._engine.pool, "checkedout"):
            report["connections_in_use"] = self._engine.pool.checkedout()
        return report

    @property
    def known_down(self) -> bool:
        """Whether the last attempt to use the database failed."""
        return self._down_since is not None

    def _unavailable(self, exc: Exception) -> DatabaseUnavailable:
        with self._state_lock:  # many request threads fail at once: one of them logs the outage
            first = self._down_since is None
            if first:
                self._down_since = time.time()
        if first:
            logger.warning("database unavailable", extra={"dialect": self.dialect, "error_type": _reason(exc)})
        return DatabaseUnavailable("The database is unavailable; try again shortly",
                                   retry_after=RETRY_AFTER_SECONDS)

    def _reachable(self) -> None:
        if self._down_since is None:
            return
        with self._state_lock:
            was_down, self._down_since = self._down_since is not None, None
        if was_down:
            logger.info("database reachable again", extra={"dialect": self.dialect})

    def dispose(self) -> None:
        """Close the pool's connections (on worker exit)."""
        if self._engine is not None:
            self._engine.dispose()


def ensure_sqlite_directory(url: str | URL) -> None:
    """Create the directory of a SQLite file: the default ./var/backend-ai.db is not there on a fresh checkout."""
    database = make_url(url).database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _reason(exc: Exception) -> str:
    """The driver's error class (never its message: it may quote statement parameters)."""
    original = getattr(exc, "orig", None)
    return type(original).__name__ if original is not None else type(exc).__name__


def _sqlite_pragmas(engine: Engine, *, busy_ms: int) -> None:
    """WAL (readers never wait for the writer), a busy timeout, foreign keys, and explicit transactions: the driver
    runs in autocommit mode and we issue BEGIN ourselves, as SQLAlchemy's SQLite documentation recommends."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("sqlite_immediate", False):
            _begin_immediate(conn, busy_ms)
        else:
            conn.exec_driver_sql("BEGIN")


def _begin_immediate(conn: Any, busy_ms: int) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock in steps under a millisecond rather than with SQLite's busy
    handler's coarse back-off (backend.db.sqlite_lock). If the lock is still taken at the busy timeout, one more try
    through SQLAlchemy, not waiting, raises its OperationalError, which the session answers with a 503 as before."""
    dbapi = conn.connection.dbapi_connection
    try:
        write_locked(dbapi, lambda: dbapi.execute("BEGIN IMMEDIATE"), busy_ms=busy_ms)
    except sqlite3.OperationalError:
        dbapi.execute("PRAGMA busy_timeout=0")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        finally:
            dbapi.execute(f"PRAGMA busy_timeout={busy_ms}")
