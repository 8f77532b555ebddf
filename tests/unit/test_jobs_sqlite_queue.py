"""The embedded job queue (backend.jobs.sqlite_queue): Huey's tables and order (priority, then first in), each
message taken once however many consumers poll at once, an enqueue that waits for a consumer holding the lock,
the schedule read only when something is due, commits synchronous=NORMAL, and a task through build_huey's Huey."""
from __future__ import annotations

import datetime as dt
import sqlite3
import threading

import pytest

from backend.jobs.engine import build_huey, queue_file
from backend.jobs.sqlite_queue import SqliteQueueHuey, SqliteQueueStorage
from backend.settings import load_settings
from tests.thread_helpers import in_background


@pytest.fixture
def path(tmp_path):
    return tmp_path / "queue.db"


@pytest.fixture
def storages(path):
    """Storages on one queue file: each one is what one worker process (or the web) has."""
    made: list[SqliteQueueStorage] = []

    def build() -> SqliteQueueStorage:
        made.append(SqliteQueueStorage("jobs", filename=str(path)))
        return made[-1]

    yield build
    for storage in made:
        storage.close()


def drain(storage: SqliteQueueStorage) -> list[bytes]:
    taken = []
    while (data := storage.dequeue()) is not None:
        taken.append(data)
    return taken


def test_messages_come_out_by_priority_then_in_order(storages):
    storage = storages()
    assert storage.dequeue() is None
    for data, priority in ((b"a", None), (b"b", None), (b"urgent", 5), (b"c", 0)):
        storage.enqueue(data, priority)
    assert storage.queue_size() == 4
    assert drain(storage) == [b"urgent", b"a", b"b", b"c"]
    assert storage.queue_size() == 0


def test_other_queues_in_the_file_are_left_alone(storages, path):
    ours, theirs = storages(), SqliteQueueStorage("other", filename=str(path))
    try:
        theirs.enqueue(b"theirs")
        ours.enqueue(b"ours")
        assert drain(ours) == [b"ours"]
        assert drain(theirs) == [b"theirs"]
    finally:
        theirs.close()


def test_consumers_polling_at_once_take_each_message_exactly_once(storages):
    producer = storages()
    sent = [f"job-{i}".encode() for i in range(300)]
    for data in sent:
        producer.enqueue(data)
    consumers = [storages() for _ in range(3)]  # three worker processes, two threads each
    taken: list[bytes] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def consume(storage: SqliteQueueStorage) -> None:
        try:
            mine = drain(storage)
            with lock:
                taken.extend(mine)
        except BaseException as exc:  # the test asserts on it
            errors.append(exc)

    threads = [threading.Thread(target=consume, args=(c,)) for c in consumers for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(taken) == sorted(sent)  # none lost, none twice


def test_an_enqueue_waits_for_a_writer_holding_the_lock(storages, path):
    storage = storages()
    storage.enqueue(b"first")  # creates the connection (and the tables) before the lock is taken
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    done, errors = in_background(lambda: storage.enqueue(b"second"))
    assert not done.wait(0.3), f"the enqueue did not wait for the lock: {errors}"
    holder.execute("COMMIT")
    holder.close()
    assert done.wait(10) and errors == []
    assert drain(storage) == [b"first", b"second"]
    assert storage.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000  # Huey's timeout, as before


def test_the_schedule_gives_what_is_due_once(storages):
    storage = storages()
    now = dt.datetime.now(dt.timezone.utc)
    storage.add_to_schedule(b"due", now - dt.timedelta(seconds=1))
    storage.add_to_schedule(b"later", now + dt.timedelta(hours=1))
    assert [bytes(d) for d in storage.read_schedule(now)] == [b"due"]
    assert storage.read_schedule(now) == []
    assert storage.schedule_size() == 1  # the later one stays


def test_commits_are_synchronous_normal_unless_fsync_is_asked(path):
    default, fsync = SqliteQueueStorage("jobs", filename=str(path)), SqliteQueueStorage("jobs", filename=str(path),
                                                                                         fsync=True)
    try:
        assert default.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert default.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert fsync.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        default.close()
        fsync.close()


def test_build_huey_runs_a_task_through_the_embedded_queue(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'backend-ai.db'}")
    monkeypatch.delenv("REDIS_URL", raising=False)
    settings = load_settings()
    huey = build_huey(settings)
    assert isinstance(huey, SqliteQueueHuey)
    assert huey.storage.filename == str(queue_file(settings.database_url))
    ran: list[str] = []

    @huey.task(name="probe")
    def probe(job_id: str) -> None:
        ran.append(job_id)

    probe("job-1")
    task = huey.dequeue()
    assert task is not None and huey.dequeue() is None
    huey.execute(task)
    assert ran == ["job-1"]
    huey.storage.close()
