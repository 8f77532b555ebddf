"""A PostgreSQL outage in the middle of a run, on a private server the tests stop and restart: the endpoints that
need the database answer 503 with Retry-After within DATABASE_TIMEOUT_SECONDS + 1 s, everything else keeps working,
the outage is logged once, nothing is written half-way, and the first request after the restart succeeds."""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backend.db.engine import Database
from backend.db.migrate import upgrade
from backend.db.models import Conversation, Message, TurnKey
from backend.errors import DatabaseUnavailable
from tests.envelope import assert_error, assert_ok
from tests.pg_helpers import PostgresServer

TIMEOUT = 1.0
ENGINE_LOGGER = "backend.db.engine"


@pytest.fixture(scope="module")
def server():
    """A migrated PostgreSQL of this module's own (the shared one must never go down)."""
    pg = PostgresServer().start()
    try:
        upgrade(pg.url)
        yield pg
    finally:
        pg.close()


@pytest.fixture
def running(server):
    """The private server, up at the start of the test and again at its end, whatever the test did to it."""
    yield server
    server.restart()


@pytest.fixture
def outage_app(make_app, running):
    return make_app(DATABASE_URL=running.url, DATABASE_TIMEOUT_SECONDS=TIMEOUT, DATABASE_POOL_SIZE=2)


def timed(call):
    """The response of ``call()`` and how long it took."""
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def logged(caplog, message: str) -> int:
    return sum(1 for r in caplog.records if r.name == ENGINE_LOGGER and r.getMessage() == message)


def stored(url: str, conversation_id: str) -> dict[str, int]:
    """What the database holds for one conversation, read directly (not through the app)."""
    database = Database(url)
    try:
        with database.session() as session:
            conversation = session.get(Conversation, conversation_id)
            assert conversation is not None
            count = {model.__name__: session.scalar(select(func.count()).select_from(model).where(
                model.conversation_id == conversation_id)) or 0 for model in (Message, TurnKey)}
            return {"message_count": conversation.message_count, **count}
    finally:
        database.dispose()


def test_an_outage_is_503_for_data_endpoints_only_logged_once_and_heals(outage_app, running, auth, caplog):
    caplog.set_level(logging.INFO, logger=ENGINE_LOGGER)
    client = outage_app.test_client()
    created = assert_ok(client.post("/api/conversations", json={"scenario": "ordering coffee"}, headers=auth), 201)
    conversation_id = created["id"]
    assert logged(caplog, "database unavailable") == 0

    running.stop()
    calls = [lambda: client.post("/api/conversations", json={}, headers=auth),
             lambda: client.get("/api/conversations", headers=auth),
             lambda: client.get(f"/api/conversations/{conversation_id}", headers=auth),
             lambda: client.post(f"/api/conversations/{conversation_id}/messages", json={"text": "Hello!"},
                                 headers=auth)]
    for _ in range(3):
        for call in calls:
            response, seconds = timed(call)
            assert_error(response, 503, "SERVICE_UNAVAILABLE")  # with Retry-After >= 1
            assert seconds <= TIMEOUT + 1
    assert logged(caplog, "database unavailable") == 1  # twelve failed requests, one outage

    assert client.get("/health").status_code == 200
    assert assert_ok(client.get("/health/ready"))["ready"] is True
    analysis = assert_ok(client.post("/api/analyze", json={"text": "I has a cat."}, headers=auth))
    assert "errors" in analysis
    report = assert_ok(client.get("/api/health"))
    assert report["components"]["database"]["status"] == "unreachable"
    assert report["status"] == "degraded"
    assert any("database" in reason for reason in report["reasons"])
    assert logged(caplog, "database unavailable") == 1  # health checks during the outage do not log it again

    running.restart()
    assert logged(caplog, "database reachable again") == 0
    read = assert_ok(client.get(f"/api/conversations/{conversation_id}", headers=auth))  # pool_pre_ping reconnects
    assert read["id"] == conversation_id
    assert logged(caplog, "database reachable again") == 1
    assert assert_ok(client.get("/api/health"))["components"]["database"]["status"] == "ok"
    assert_ok(client.post("/api/conversations", json={}, headers=auth), 201)


def test_a_turn_whose_store_fails_leaves_no_messages(outage_app, running, auth, fake_gemini):
    client = outage_app.test_client()
    conversation_id = assert_ok(client.post("/api/conversations", json={}, headers=auth), 201)["id"]
    fake_gemini.configure(latency_ms=1500)  # the model answers slowly: the database goes down meanwhile
    answers = []
    turn = threading.Thread(target=lambda: answers.append(outage_app.test_client().post(
        f"/api/conversations/{conversation_id}/messages", json={"text": "I goed to the market."},
        headers={**auth, "Idempotency-Key": "turn-1"})), daemon=True)
    turn.start()
    deadline = time.monotonic() + 15
    while fake_gemini.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake_gemini.calls > 0, "the turn never reached the model"  # so it holds its lease: begin succeeded
    running.stop()
    turn.join(30)
    assert not turn.is_alive()
    assert_error(answers[0], 503, "SERVICE_UNAVAILABLE")

    running.restart()
    assert stored(running.url, conversation_id) == {"message_count": 0, "Message": 0, "TurnKey": 0}
    listing = assert_ok(client.get(f"/api/conversations/{conversation_id}", headers=auth))
    assert listing["messages"] == []


@contextmanager
def frozen(server: PostgresServer):
    """Every process of the private server stopped (SIGSTOP), as a stalled host or a proxy whose database is gone:
    the kernel still accepts connections and acknowledges bytes, but nothing ever answers."""
    postmaster = int(Path(server.data, "postmaster.pid").read_text().split()[0])
    children = [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat") if _parent(stat) == postmaster]
    pids = [postmaster, *children]
    for pid in pids:
        _signal(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            _signal(pid, signal.SIGCONT)


def _signal(pid: int, signum: int) -> None:
    """Signal a server process; one that ended since it was listed (a backend leaving) needs none."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _parent(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None  # the process ended meanwhile


def test_a_server_that_stops_answering_is_a_503_not_a_hang(make_app, running, auth):
    timeout = 2.0  # the default; libpq waits at least 2 s for a new connection, so a smaller one cannot be met
    app = make_app(DATABASE_URL=running.url, DATABASE_TIMEOUT_SECONDS=timeout, DATABASE_POOL_SIZE=1)
    client = app.test_client()
    conversation_id = assert_ok(client.post("/api/conversations", json={}, headers=auth), 201)["id"]
    with frozen(running):
        for path in (f"/api/conversations/{conversation_id}", "/api/conversations"):
            response, seconds = timed(lambda path=path: client.get(path, headers=auth))
            assert_error(response, 503, "SERVICE_UNAVAILABLE")
            assert seconds <= timeout + 1
        assert assert_ok(client.get("/api/health"))["components"]["database"]["status"] == "unreachable"
    read = assert_ok(client.get(f"/api/conversations/{conversation_id}", headers=auth))
    assert read["id"] == conversation_id


def test_a_statement_in_flight_when_the_server_stalls_is_a_503(running):
    database = Database(running.url, pool_size=1, timeout_seconds=TIMEOUT)
    try:
        started = None
        with pytest.raises(DatabaseUnavailable):
            with database.session() as session:
                session.execute(select(func.count()).select_from(Conversation))  # the connection is checked out
                with frozen(running):
                    started = time.monotonic()
                    session.execute(select(func.count()).select_from(Message))
        assert started is not None and time.monotonic() - started <= TIMEOUT + 1
        assert database.ping()  # the dead connection left the pool (of one); a new one answers
    finally:
        database.dispose()


def test_a_server_that_never_answered_is_a_503_logged_once_for_a_burst(make_app, auth, caplog):
    caplog.set_level(logging.INFO, logger=ENGINE_LOGGER)
    down = PostgresServer()  # never started: nothing listens on its port
    try:
        app = make_app(DATABASE_URL=down.url, DATABASE_TIMEOUT_SECONDS=TIMEOUT, DATABASE_POOL_SIZE=2)
        results: list[tuple[int, float]] = []

        def request() -> None:
            response, seconds = timed(lambda: app.test_client().post("/api/conversations", json={}, headers=auth))
            results.append((response.status_code, seconds))

        burst = [threading.Thread(target=request, daemon=True) for _ in range(8)]
        for thread in burst:
            thread.start()
        for thread in burst:
            thread.join(30)
        assert [status for status, _ in results] == [503] * 8
        assert max(seconds for _, seconds in results) <= TIMEOUT + 1
        assert logged(caplog, "database unavailable") == 1
        assert app.test_client().get("/health/ready").status_code == 200
    finally:
        down.close()
