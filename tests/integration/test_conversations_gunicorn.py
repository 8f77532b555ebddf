"""Tutor conversations through real gunicorn: two instances (2 gthread workers each) share one database and Redis.

Turns of one conversation never interleave across workers and instances (one 201, the others 409), callers are
isolated, Idempotency-Key replays across instances, a streamed reply arrives piece by piece, and a worker killed
mid-turn stores nothing and leaves a lease that expires.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select, update

from backend.db.migrate import upgrade
from backend.db.models import Conversation, utcnow
from tests.conftest import CLIENT_KEY
from tests.conversation_helpers import OTHER_KEY, contents_text, reply_requests, sse_events
from tests.integration.conversation_pair import (
    ALICE,
    assert_busy,
    create,
    listed,
    messages,
    post_turn,
    start_pair,
    stop_pair,
)
from tests.integration.servers import Gunicorn

pytestmark = pytest.mark.gunicorn
STREAM = {"Accept": "text/event-stream"}
CONCURRENT_TURNS = 8


@pytest.fixture(scope="module")
def postgresql_pair(fake_gemini, tmp_path_factory):
    """Instances A and B on a PostgreSQL database of this module's; yields (a, b, database_url)."""
    from tests.pg_helpers import create_database, drop_database, postgres_admin_url

    url = create_database(postgres_admin_url())
    try:
        upgrade(url)
        servers, prefix = start_pair(url, fake_gemini, tmp_path_factory.mktemp("pg-pair"))
        yield servers[0], servers[1], url
        stop_pair(servers, prefix)
    finally:
        drop_database(url)


@pytest.fixture(scope="module")
def sqlite_pair(fake_gemini, tmp_path_factory):
    """Instances A and B on one SQLite file on this host (the embedded default); yields (a, b, database_url)."""
    directory = tmp_path_factory.mktemp("sqlite-pair")
    url = f"sqlite:///{directory / 'backend-ai.db'}"
    upgrade(url)
    servers, prefix = start_pair(url, fake_gemini, directory)
    yield servers[0], servers[1], url
    stop_pair(servers, prefix)


# -- 1. ordering -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_concurrent_turns_across_instances_one_wins_the_others_409_then_turns_alternate(database, request,
                                                                                        fake_gemini):
    a, b, _ = request.getfixturevalue(f"{database}_pair")
    conversation = create(a, ALICE)
    fake_gemini.configure(latency_ms=1200)  # the winner holds the lease while the others arrive
    gate = threading.Barrier(CONCURRENT_TURNS)

    def attempt(i: int) -> tuple[str, requests.Response]:
        text = f"Attempt number {i} of the race."
        gate.wait()
        return text, post_turn((a, b)[i % 2], conversation, ALICE, text)

    with ThreadPoolExecutor(CONCURRENT_TURNS) as pool:
        attempts = list(pool.map(attempt, range(CONCURRENT_TURNS)))
    winners = [(text, response) for text, response in attempts if response.status_code == 201]
    assert len(winners) == 1, [response.status_code for _, response in attempts]
    for _, response in attempts:
        if response.status_code != 201:
            assert_busy(response)
    text, won = winners[0]
    replies = reply_requests(fake_gemini)
    assert len(replies) == 1 and text in contents_text(replies[0])  # the losers never reached the model
    stored = messages(b, conversation)
    reply = won.json()["data"]["tutor"]["text"]
    assert [(m["role"], m["text"]) for m in stored] == [("learner", text), ("tutor", reply)]

    fake_gemini.configure(latency_ms=0)
    texts = [f"Then turn {n} follows." for n in range(4)]
    answers = []
    for n, then in enumerate(texts):
        response = post_turn((b, a)[n % 2], conversation, ALICE, then)
        assert response.status_code == 201, response.text
        answers.append(response.json()["data"])
    stored = messages(a, conversation)
    assert [m["role"] for m in stored] == ["learner", "tutor"] * 5
    assert [m["text"] for m in stored[::2]] == [text, *texts]
    assert [m["id"] for m in stored[2:]] == [m["id"] for answer in answers for m in (answer["learner"],
                                                                                      answer["tutor"])]


# -- 2. isolation ----------------------------------------------------------------------------------------------

def test_another_caller_finds_nothing_on_the_other_instance(postgresql_pair, fake_gemini):
    a, b, _ = postgresql_pair
    alice, bob = f"alice.{uuid.uuid4().hex[:8]}", f"bob.{uuid.uuid4().hex[:8]}"
    owner = {"X-API-Key": CLIENT_KEY, "X-User-ID": alice}
    conversation = create(a, owner)
    assert post_turn(a, conversation, owner).status_code == 201
    others = {"key1/bob": {"X-API-Key": CLIENT_KEY, "X-User-ID": bob}, "key1 without user": {"X-API-Key": CLIENT_KEY},
              "key2/alice": {"X-API-Key": OTHER_KEY, "X-User-ID": alice}}
    path = f"{b.url}/api/conversations/{conversation}"
    for name, headers in others.items():
        for response in (requests.get(path, headers=headers, timeout=10),
                         requests.post(f"{path}/messages", json={"text": "Let me in."}, headers=headers, timeout=10),
                         requests.delete(path, headers=headers, timeout=10)):
            assert response.status_code == 404, (name, response.request.method, response.text)
            assert response.json()["error"]["code"] == "NOT_FOUND"
        assert conversation not in listed(b, headers), name
    assert listed(b, owner)[0] == conversation
    assert len(messages(b, conversation, owner)) == 2  # the others' deletes removed nothing
    assert len(reply_requests(fake_gemini)) == 1  # nor did their posts reach the model


# -- 3. idempotency --------------------------------------------------------------------------------------------

def test_an_idempotency_key_replays_on_the_other_instance(postgresql_pair, fake_gemini):
    a, b, _ = postgresql_pair
    conversation = create(a, ALICE)
    headers = {**ALICE, "Idempotency-Key": f"turn-{uuid.uuid4().hex}"}
    first = post_turn(a, conversation, headers, "I goes to the market yesterday.")
    again = post_turn(b, conversation, headers, "I goes to the market yesterday.")
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["data"] == first.json()["data"]
    reused = post_turn(b, conversation, headers, "Other words entirely.")
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "VALIDATION_ERROR"
    assert len(reply_requests(fake_gemini)) == 1
    stored = messages(b, conversation)
    assert [m["id"] for m in stored] == [first.json()["data"]["learner"]["id"], first.json()["data"]["tutor"]["id"]]


# -- 4. streaming ----------------------------------------------------------------------------------------------

def test_a_streamed_reply_arrives_in_pieces_and_is_readable_on_the_other_instance(postgresql_pair, fake_gemini):
    a, b, _ = postgresql_pair
    pause = 0.15
    fake_gemini.configure(chunk_size=8, chunk_latency_ms=int(pause * 1000))
    conversation = create(a, ALICE)
    lines, first_delta, done, stored_at_first_delta = [], None, None, None
    with requests.post(f"{a.url}/api/conversations/{conversation}/messages", json={"text": "Tell me about Paris."},
                       headers={**ALICE, **STREAM}, stream=True, timeout=30) as response:
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        for line in response.iter_lines(decode_unicode=True):
            if line == "event: delta" and first_delta is None:
                first_delta = time.monotonic()
                stored_at_first_delta = messages(b, conversation)
            elif line == "event: done":
                done = time.monotonic()
            lines.append(line)
    events = sse_events("\n".join(lines))
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"delta"} and len(names) >= 6, names
    assert stored_at_first_delta == []  # the first piece came while the reply was still being written
    # The pieces were spread over the fake's pauses, the first one at the start (relative, not absolute, times).
    assert first_delta is not None and done is not None and done - first_delta >= (len(names) - 2) * pause / 2
    body = events[-1][1]
    assert "".join(data["text"] for name, data in events if name == "delta") == body["tutor"]["text"]
    stored = messages(b, conversation)
    assert [(m["id"], m["role"]) for m in stored] == [(body["learner"]["id"], "learner"),
                                                      (body["tutor"]["id"], "tutor")]
    assert stored[1]["text"] == body["tutor"]["text"]


# -- 5. a worker killed mid-turn -------------------------------------------------------------------------------

def workers_of(server: Gunicorn) -> set[int]:
    assert server.process is not None
    out = subprocess.run(["ps", "--ppid", str(server.process.pid), "-o", "pid="], capture_output=True, text=True)
    return {int(pid) for pid in out.stdout.split()}


def worker_serving(server: Gunicorn, client_port: int) -> int:
    """The worker holding the accepted socket of the connection from ``client_port`` (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
            if (local, remote) == (server.port, client_port):
                inodes.add(f"socket:[{fields[9]}]")
    for pid in workers_of(server):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) in inodes:
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no worker of {server.url} holds the connection from port {client_port}")


def wait_for(condition, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_a_worker_killed_mid_turn_stores_nothing_and_its_lease_expires(postgresql_pair, fake_gemini):
    a, b, database_url = postgresql_pair
    conversation = create(b, ALICE)
    ready_before = a.ready_workers()
    fake_gemini.configure(latency_ms=30_000)  # the turn waits on the model until its worker dies
    connection = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
    connection.connect()
    client_port = connection.sock.getsockname()[1]
    connection.request("POST", f"/api/conversations/{conversation}/messages", json.dumps({"text": "Killed words."}),
                       {**ALICE, "Content-Type": "application/json"})
    wait_for(lambda: fake_gemini.calls >= 1)  # the lease is taken before the model is called
    worker = worker_serving(a, client_port)
    os.kill(worker, signal.SIGKILL)
    with pytest.raises((http.client.HTTPException, OSError)):
        connection.getresponse()
    connection.close()
    fake_gemini.configure(latency_ms=0)

    assert messages(b, conversation) == []
    assert_busy(post_turn(b, conversation, ALICE, "Too early."))  # the dead turn's lease still holds it
    engine = create_engine(database_url)
    try:
        with engine.begin() as db:
            token = db.scalar(select(Conversation.turn_token).where(Conversation.id == conversation))
            assert token is not None
            # The lease is longest_request_seconds + 15 (80 s here; never under 60 s, whatever the settings):
            # rather than wait for it, age it, as its time passing would.
            aged = db.execute(update(Conversation).where(Conversation.id == conversation,
                                                         Conversation.turn_token == token)
                              .values(turn_until=utcnow() - timedelta(seconds=1)))
            assert aged.rowcount == 1
    finally:
        engine.dispose()
    after = post_turn(b, conversation, ALICE, "After the lease.")
    assert after.status_code == 201, after.text
    assert [(m["role"], m["text"]) for m in messages(b, conversation)][0] == ("learner", "After the lease.")
    assert len(messages(b, conversation)) == 2  # nothing of the killed turn

    wait_for(lambda: a.ready_workers() > ready_before)  # the master replaced the dead worker
    assert worker not in workers_of(a) and len(workers_of(a)) == 2
    assert post_turn(a, conversation, ALICE, "And again on A.").status_code == 201
    assert [m["role"] for m in messages(a, conversation)] == ["learner", "tutor"] * 2
