"""The database layer on SQLite and on a real PostgreSQL: pragmas, writers that wait for each other, bounded waits
for locks, connections and statements (503, never a hang), whole-transaction rollback, and statement metrics."""
from __future__ import annotations

import logging
import threading
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text

from backend.db import conversations
from backend.db.engine import Database
from backend.db.models import Conversation
from backend.db.timing import statement
from backend.errors import DatabaseUnavailable
from backend.schemas.caller import Caller
from tests.databases import empty_postgres

CALLER = Caller("tester", "learner-1")
MARKER = "my-secret-learner-sentence-4711"


@pytest.fixture
def databases():
    """Build Database objects; their pools are closed afterwards."""
    made: list[Database] = []

    def build(url: str, **options) -> Database:
        made.append(Database(url, **options))
        return made[-1]

    yield build
    for database in made:
        database.dispose()


@pytest.fixture
def open_database(databases, database_url):
    """Build Database objects on the test's empty database (SQLite, then PostgreSQL)."""
    return lambda **options: databases(database_url, **options)


@pytest.fixture
def open_postgres(databases, postgres_database):
    """Build Database objects on the empty test database of the shared PostgreSQL (for what SQLite lacks)."""
    empty_postgres(postgres_database)
    return lambda **options: databases(postgres_database, **options)


def new_conversation(database: Database) -> str:
    with database.session(write=True) as session:
        return conversations.create(session, CALLER, scenario="at the bakery", level=None, native_language=None,
                                    language="en-US", voice=None).id


def message_count(database: Database, conversation_id: str) -> int:
    with database.session() as session:
        return conversations.get(session, CALLER, conversation_id).message_count


def conversation_total(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Conversation)) or 0


def add_one(database: Database, conversation_id: str, held: threading.Event | None = None,
            release: threading.Event | None = None) -> None:
    """Read, then write, in one write session (like storing a turn); optionally hold the lock until ``release``."""
    with database.session(write=True) as session:
        conversation = conversations.get(session, CALLER, conversation_id, for_update=True)
        conversation.message_count += 1
        session.flush()
        if held is not None and release is not None:
            held.set()
            release.wait(30)


def in_thread(work, *args) -> tuple[threading.Thread, threading.Event, list[BaseException]]:
    """Run ``work`` in a thread; its end is signalled and its error, if any, kept."""
    done, errors = threading.Event(), []

    def run() -> None:
        try:
            work(*args)
        except BaseException as exc:  # the test asserts on it
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done, errors


def test_sqlite_pragmas_hold_on_every_pooled_connection(databases, tmp_path):
    database = databases(f"sqlite:///{tmp_path / 'pragmas.db'}", pool_size=3, timeout_seconds=1.5)
    with database.session() as one, database.session() as two, database.session() as three:
        sessions = (one, two, three)
        modes = [s.execute(text("PRAGMA journal_mode")).scalar() for s in sessions]
        busy = [s.execute(text("PRAGMA busy_timeout")).scalar() for s in sessions]
        foreign = [s.execute(text("PRAGMA foreign_keys")).scalar() for s in sessions]
        assert database.engine.pool.checkedout() == 3  # three distinct pooled connections
    assert modes == ["wal"] * 3
    assert busy == [1500] * 3
    assert foreign == [1] * 3


def test_sqlite_creates_the_directory_of_a_relative_path(databases, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    database = databases("sqlite:///./var/nested/backend-ai.db")
    assert database.ping()
    assert (tmp_path / "var" / "nested" / "backend-ai.db").is_file()


def test_engine_is_created_on_first_use_and_health_reports_it(open_database, database_url):
    database = open_database(pool_size=2)
    assert database._engine is None  # nothing connects before a worker uses it (after gunicorn's fork)
    report = database.health()
    assert report["status"] == "ok"
    assert report["dialect"] == database_url.split(":")[0].split("+")[0]
    assert report["pool_size"] == 2 and report["connections_in_use"] == 0


def test_two_concurrent_writers_both_succeed_one_after_the_other(open_database):
    database = open_database(pool_size=2, timeout_seconds=10)
    conversation_id = new_conversation(database)
    held, release = threading.Event(), threading.Event()
    first, _, first_errors = in_thread(add_one, database, conversation_id, held, release)
    assert held.wait(10)
    second, second_done, second_errors = in_thread(add_one, database, conversation_id)
    assert not second_done.wait(0.3), f"the second writer did not wait for the first: {second_errors}"
    release.set()
    first.join(15)
    second.join(15)
    assert first_errors == [] and second_errors == []
    assert message_count(database, conversation_id) == 2  # serialised: neither update was lost


def test_a_write_lock_held_too_long_makes_the_other_writer_a_503(open_database):
    timeout = 1.0
    database = open_database(pool_size=2, timeout_seconds=timeout)
    conversation_id = new_conversation(database)
    held, release = threading.Event(), threading.Event()
    holder, _, holder_errors = in_thread(add_one, database, conversation_id, held, release)
    assert held.wait(10)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            add_one(database, conversation_id)
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join(15)
    assert raised.value.status == 503 and raised.value.code == "SERVICE_UNAVAILABLE"
    assert raised.value.retry_after and raised.value.retry_after > 0
    assert waited <= timeout + 1
    assert holder_errors == []
    assert message_count(database, conversation_id) == 1  # the holder's write stands; the other wrote nothing


def test_an_exhausted_pool_is_a_503_after_the_timeout(open_database):
    timeout = 1.0
    database = open_database(pool_size=1, timeout_seconds=timeout)
    held, release = threading.Event(), threading.Event()

    def hold_the_connection() -> None:
        with database.session() as session:
            session.execute(text("SELECT 1"))
            held.set()
            release.wait(30)

    holder, _, holder_errors = in_thread(hold_the_connection)
    assert held.wait(10)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailable):
            with database.session() as session:
                session.execute(text("SELECT 1"))
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join(15)
    assert waited <= timeout + 1
    assert holder_errors == []
    assert database.ping()  # the connection is back in the pool and usable


def test_an_error_in_the_block_rolls_the_whole_transaction_back(open_database):
    database = open_database()
    with pytest.raises(RuntimeError):
        with database.session(write=True) as session:
            conversations.create(session, CALLER, scenario="x", level=None, native_language=None,
                                 language="en-US", voice=None)
            raise RuntimeError("after the insert")
    assert conversation_total(database) == 0


def test_postgres_statement_timeout_is_a_503_and_rolls_back(open_postgres):
    timeout = 1.0  # SQLite has no statement timeout: its waits are bounded by the busy timeout (tested above)
    database = open_postgres(timeout_seconds=timeout)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        with database.session(write=True) as session:
            conversations.create(session, CALLER, scenario="x", level=None, native_language=None,
                                 language="en-US", voice=None)
            session.execute(text("SELECT pg_sleep(5)"))
    assert time.monotonic() - started <= timeout + 1
    assert conversation_total(database) == 0  # the insert before the timeout went with it


def test_requests_time_their_statements_by_name(data_client, auth):
    def count(name: str) -> float:
        return REGISTRY.get_sample_value("db_query_duration_seconds_count", {"statement": name}) or 0.0

    before = {name: count(name) for name in ("conversations.create", "conversations.page")}
    assert data_client.post("/api/conversations", json={"scenario": "at the bakery"}, headers=auth).status_code == 201
    assert data_client.get("/api/conversations", headers=auth).status_code == 200
    assert count("conversations.create") > before["conversations.create"]
    assert count("conversations.page") > before["conversations.page"]


def test_a_slow_statement_is_logged_by_name_without_its_parameters(open_postgres, caplog):
    database = open_postgres(timeout_seconds=5)  # PostgreSQL for pg_sleep
    before = REGISTRY.get_sample_value("db_query_duration_seconds_count", {"statement": "test.slow"}) or 0.0
    with caplog.at_level(logging.WARNING, logger="backend.db.timing"):
        with database.session() as session, statement("test.slow"):
            echoed = session.execute(text("SELECT :words, pg_sleep(0.15)"), {"words": MARKER}).first()
    assert echoed is not None and echoed[0] == MARKER  # the parameter really went with the statement
    slow = [r for r in caplog.records if r.getMessage() == "slow database statement"]
    assert [r.statement for r in slow] == ["test.slow"]
    assert slow[0].seconds >= 0.1
    assert all(MARKER not in str(value) for value in vars(slow[0]).values())
    assert all(MARKER not in r.getMessage() for r in caplog.records)
    assert REGISTRY.get_sample_value("db_query_duration_seconds_count", {"statement": "test.slow"}) == before + 1


def test_no_engine_exists_until_the_worker_uses_it(make_app, database_url):
    """create_app opens nothing: gunicorn's workers each create their engine after the fork, on first use."""
    database = make_app(DATABASE_URL=database_url).extensions["backend"].database
    assert database._engine is None  # noqa: SLF001  (the point is that it does not exist yet)
    assert database.ping()
    assert database._engine is not None  # noqa: SLF001
