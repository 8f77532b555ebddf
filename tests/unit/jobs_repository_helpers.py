"""What the jobs repository tests share: callers, a lesson, a database over SQLite and PostgreSQL, and short
steps on its rows."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from backend.db import jobs
from backend.db.engine import Database
from backend.db.models import Job, utcnow
from backend.schemas.caller import Caller

ALICE, BOB, OTHER_KEY_ALICE = Caller("tester", "alice"), Caller("tester", "bob"), Caller("other", "alice")
LESSON = {"topic": "the past simple", "level": "A2", "sections": 4}
T1, T2, T3 = "1" * 32, "2" * 32, "3" * 32


@pytest.fixture(name="database")
def database_fixture(database_url):
    database = Database(database_url, pool_size=10, timeout_seconds=5)
    yield database
    database.dispose()


def new_job(database, caller=ALICE, *, max_active=100, inputs=LESSON):
    with database.session(write=True) as session:
        return jobs.create(session, caller, "lesson", inputs, max_active=max_active).id


def row(database, job_id):
    with database.session() as session:
        return session.get(Job, job_id)


def change(database, job_id, **values):
    with database.session(write=True) as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def expire_lease(database, job_id):
    change(database, job_id, lease_until=utcnow() - timedelta(seconds=1))


def claim(database, job_id, token, *, max_attempts=3, lease_seconds=30):
    with database.session(write=True) as session:
        return jobs.claim(session, job_id, token=token, lease_seconds=lease_seconds, max_attempts=max_attempts)


def call(database, function, *args, **kwargs):
    with database.session(write=True) as session:
        return function(session, *args, **kwargs)


def all_at_once(count, work):
    """Run ``work(i)`` in ``count`` threads released together; what each returned or raised."""
    barrier, outcomes = threading.Barrier(count), [None] * count

    def run(i):
        barrier.wait(10)
        try:
            outcomes[i] = work(i)
        except Exception as exc:  # the test counts them
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes
