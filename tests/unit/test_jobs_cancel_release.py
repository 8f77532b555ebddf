"""The jobs repository (backend/db/jobs.py) on SQLite and a real PostgreSQL: cancellation in every state,
isolation between callers, the lost jobs and the counts operators see, and a job released back to the queue."""
from __future__ import annotations

from datetime import timedelta

import pytest

from backend.db import jobs
from backend.db.models import utcnow
from backend.errors import NotFound
from tests.unit.jobs_repository_helpers import (
    ALICE,
    BOB,
    OTHER_KEY_ALICE,
    T1,
    T2,
    T3,
    call,
    change,
    claim,
    database_fixture,  # noqa: F401  (the database fixture)
    expire_lease,
    new_job,
    row,
)


def test_cancel_a_queued_job_then_delete_it(database):
    job_id = new_job(database)
    assert call(database, jobs.cancel, ALICE, job_id) == "cancelled"
    assert row(database, job_id).status == "cancelled" and row(database, job_id).finished_at is not None
    assert claim(database, job_id, T1) is None  # its message may still be delivered: it does not run
    assert call(database, jobs.cancel, ALICE, job_id) == "deleted"
    assert row(database, job_id) is None
    with pytest.raises(NotFound):
        call(database, jobs.cancel, ALICE, job_id)


def test_cancel_a_running_job_stops_its_worker_at_the_next_step(database):
    job_id = new_job(database)
    claim(database, job_id, T1)
    assert call(database, jobs.cancel, ALICE, job_id) == "cancelled"
    stored = row(database, job_id)
    assert (stored.status, stored.cancel_requested, stored.lease_token) == ("cancelled", True, T1)
    for told in (call(database, jobs.renew, job_id, T1, 30),
                 call(database, jobs.progress, job_id, T1, steps_done=2, steps_total=4)):
        assert not told and (told.ours, told.cancel_requested) == (True, True)
    expire_lease(database, job_id)  # even if its worker died: never claimed or re-enqueued again
    with database.session() as session:
        assert jobs.expired(session, utcnow(), limit=10) == []
    assert claim(database, job_id, T2) is None
    ended = call(database, jobs.finish, job_id, T1, status="succeeded", result={"title": "too late"})
    assert (ended.status, ended.result, ended.lease_token) == ("cancelled", None, None)
    assert call(database, jobs.cancel, ALICE, job_id) == "deleted"


@pytest.mark.parametrize("status", ["succeeded", "failed"])
def test_cancel_a_finished_job_deletes_it(database, status):
    job_id = new_job(database)
    claim(database, job_id, T1)
    call(database, jobs.finish, job_id, T1, status=status)
    assert call(database, jobs.cancel, ALICE, job_id) == "deleted"
    assert row(database, job_id) is None


def test_another_caller_can_neither_cancel_nor_delete_a_job(database):
    queued, finished = new_job(database), new_job(database)
    claim(database, finished, T1)
    call(database, jobs.finish, finished, T1, status="succeeded")
    for stranger in (BOB, OTHER_KEY_ALICE):
        for job_id in (queued, finished):
            with pytest.raises(NotFound):
                call(database, jobs.cancel, stranger, job_id)
    assert (row(database, queued).status, row(database, finished).status) == ("queued", "succeeded")


def test_expired_lists_lost_jobs_oldest_first_within_the_limit(database):
    now = utcnow()
    fresh, lost_message, oldest, live, dead = (new_job(database) for _ in range(5))
    change(database, lost_message, created_at=now - timedelta(minutes=10))
    change(database, oldest, created_at=now - timedelta(minutes=20))
    claim(database, oldest, T1)
    expire_lease(database, oldest)
    claim(database, live, T2)
    claim(database, dead, T3)
    call(database, jobs.finish, dead, T3, status="failed")
    with database.session() as session:
        assert jobs.expired(session, utcnow(), limit=10) == [oldest, lost_message]
        assert jobs.expired(session, utcnow(), limit=1) == [oldest]
        assert jobs.expired(session, utcnow(), limit=10, queued_for=3600) == [oldest]
        assert fresh not in jobs.expired(session, utcnow() + timedelta(seconds=1), limit=10, queued_for=3600)


def test_counts_by_status_covers_every_caller_and_state(database):
    queued, running, done, failed_long_ago, cancelled = (new_job(database, caller) for caller in
                                                         (ALICE, BOB, ALICE, BOB, OTHER_KEY_ALICE))
    for job_id, token in ((running, T1), (done, T2), (failed_long_ago, T3)):
        claim(database, job_id, token)
    call(database, jobs.finish, done, T2, status="succeeded")
    call(database, jobs.finish, failed_long_ago, T3, status="failed")
    change(database, failed_long_ago, finished_at=utcnow() - timedelta(days=2))
    call(database, jobs.cancel, OTHER_KEY_ALICE, cancelled)
    with database.session() as session:
        assert jobs.counts_by_status(session) == {"queued": 1, "running": 1, "succeeded": 1, "failed": 1,
                                                  "cancelled": 1}
        today = jobs.counts_by_status(session, finished_since=utcnow() - timedelta(days=1))
        assert today == {"queued": 1, "running": 1, "succeeded": 1, "failed": 0, "cancelled": 1}
        assert set(jobs.counts_by_status(session, kind="essay").values()) == {0}
    assert row(database, queued).status == "queued"


def test_a_released_job_is_queued_again_without_counting_the_attempt(database):
    job_id = new_job(database)
    for _ in range(5):  # five deploys during one lesson: never out of attempts
        assert claim(database, job_id, T1, max_attempts=3) is not None
        lease = call(database, jobs.release, job_id, T1)
        assert lease.ours and not lease.cancel_requested
        released = row(database, job_id)
        assert (released.status, released.attempts, released.lease_token) == ("queued", 0, None)
    assert claim(database, job_id, T2) is not None  # claimable at once by another worker
    assert not call(database, jobs.release, job_id, T1).ours  # no longer T1's


def test_releasing_a_job_cancelled_meanwhile_says_so(database):
    job_id = new_job(database)
    claim(database, job_id, T1)
    call(database, jobs.cancel, ALICE, job_id)
    lease = call(database, jobs.release, job_id, T1)
    assert lease.cancel_requested and row(database, job_id).status == "cancelled"
