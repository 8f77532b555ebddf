"""Waiting for SQLite's write lock in fine steps (backend.db.sqlite_lock) and the database's write sessions that use
it: a writer waits for the holder and then writes, gives up with a 503 at the busy timeout, never retries what is
not a lock, and leaves its connection's busy timeout as configured. SQLite only: PostgreSQL's write sessions do
not use it (their tests run on both in test_database_engine.py and the jobs tests)."""
from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text

from backend.db.engine import Database
from backend.db.sqlite_lock import locked, write_locked
from backend.errors import DatabaseUnavailable
from tests.thread_helpers import in_background


@pytest.fixture
def sqlite_file(tmp_path):
    path = tmp_path / "lock.db"
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x INTEGER)")
    return path


@pytest.fixture
def holder(sqlite_file):
    """A second connection that takes the write lock on demand and gives it back."""
    conn = sqlite3.connect(sqlite_file, isolation_level=None, check_same_thread=False)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


@pytest.fixture
def database(sqlite_file):
    made = Database(f"sqlite:///{sqlite_file}", pool_size=1, timeout_seconds=1.0)
    yield made
    made.dispose()


def busy_timeout(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA busy_timeout").fetchone()[0]


def rows(path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [x for (x,) in conn.execute("SELECT x FROM t ORDER BY x")]


def test_a_write_waits_for_the_holder_then_succeeds(sqlite_file, holder):
    conn = sqlite3.connect(sqlite_file, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    done, errors = in_background(lambda: write_locked(conn, lambda: conn.execute("INSERT INTO t VALUES (2)"),
                                                      busy_ms=5000))
    assert not done.wait(0.3), f"the write did not wait for the lock: {errors}"
    holder.execute("COMMIT")
    assert done.wait(10) and errors == []
    assert rows(sqlite_file) == [1, 2]  # the holder's row, then the waiting writer's
    assert busy_timeout(conn) == 5000  # off only while it waited
    conn.close()


def test_a_write_gives_up_with_the_lock_error_at_the_bound(sqlite_file, holder):
    conn = sqlite3.connect(sqlite_file, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    tries = []

    def attempt() -> None:
        tries.append(1)
        conn.execute("INSERT INTO t VALUES (2)")

    with pytest.raises(sqlite3.OperationalError) as raised:
        write_locked(conn, attempt, busy_ms=200)
    assert locked(raised.value)
    assert len(tries) > 1  # tried again while it waited
    assert busy_timeout(conn) == 200
    holder.execute("ROLLBACK")
    assert rows(sqlite_file) == []
    conn.close()


def test_an_error_that_is_not_a_lock_is_raised_at_once(sqlite_file):
    conn = sqlite3.connect(sqlite_file, isolation_level=None)
    tries = []

    def attempt() -> None:
        tries.append(1)
        conn.execute("INSERT INTO missing VALUES (1)")

    with pytest.raises(sqlite3.OperationalError) as raised:
        write_locked(conn, attempt, busy_ms=5000)
    assert not locked(raised.value)
    assert tries == [1]
    conn.close()


def test_a_write_session_waits_for_the_lock_and_keeps_its_busy_timeout(database, holder, sqlite_file):
    holder.execute("BEGIN IMMEDIATE")
    def write() -> None:
        with database.session(write=True) as session:
            session.execute(text("INSERT INTO t VALUES (3)"))

    done, errors = in_background(write)
    assert not done.wait(0.3), f"the write session did not wait for the lock: {errors}"
    holder.execute("COMMIT")
    assert done.wait(10) and errors == []
    assert rows(sqlite_file) == [3]
    with database.session() as session:  # the pool's only connection: the one that waited
        assert session.execute(text("PRAGMA busy_timeout")).scalar() == 1000


def test_a_write_session_that_cannot_get_the_lock_is_a_503_and_the_connection_stays_usable(database, holder,
                                                                                           sqlite_file):
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(DatabaseUnavailable) as raised:
        with database.session(write=True) as session:
            session.execute(text("INSERT INTO t VALUES (4)"))
    assert raised.value.status == 503
    holder.execute("ROLLBACK")
    with database.session(write=True) as session:
        assert session.execute(text("PRAGMA busy_timeout")).scalar() == 1000
        session.execute(text("INSERT INTO t VALUES (5)"))
    assert rows(sqlite_file) == [5]
