"""The jobs repository (backend/db/jobs.py) on SQLite and a real PostgreSQL: the per-caller limit (under
concurrency too), claims that one worker wins, leases that expire and are claimed again, attempts that run out,
cancellation in every state, isolation between callers, and jobs in erase, export and purge."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from backend.db import jobs
from backend.db.engine import Database
from backend.db.models import Job, utcnow
from backend.errors import NotFound, RateLimited
from backend.schemas.caller import Caller

ALICE, BOB, OTHER_KEY_ALICE = Caller("tester", "alice"), Caller("tester", "bob"), Caller("other", "alice")
LESSON = {"topic": "the past simple", "level": "A2", "sections": 4}
T1, T2, T3 = "1" * 32, "2" * 32, "3" * 32


@pytest.fixture
def database(database_url):
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


def test_create_stores_a_queued_job_that_only_its_caller_can_get(database):
    job_id = new_job(database)
    with database.session() as session:
        job = jobs.get(session, ALICE, job_id)
        assert len(job_id) == 32 and int(job_id, 16) >= 0
        assert (job.kind, job.status, job.inputs, job.result, job.error) == ("lesson", "queued", LESSON, None, None)
        assert (job.progress, job.attempts, job.cancel_requested, job.lease_token) == (0.0, 0, False, None)
        assert job.started_at is None and job.finished_at is None and job.created_at == job.updated_at
        for stranger in (BOB, OTHER_KEY_ALICE, Caller("tester")):
            with pytest.raises(NotFound):
                jobs.get(session, stranger, job_id)
        with pytest.raises(NotFound):
            jobs.get(session, ALICE, "0" * 32)
    with pytest.raises(ValueError):
        call(database, jobs.create, ALICE, "essay", LESSON, max_active=3)


def test_the_limit_counts_only_the_callers_queued_and_running_jobs(database):
    first, second = new_job(database, max_active=2), new_job(database, max_active=2)
    with pytest.raises(RateLimited) as refused:
        new_job(database, max_active=2)
    assert (refused.value.status, refused.value.code, refused.value.retry_after) == (429, "RATE_LIMITED", 5.0)
    new_job(database, BOB, max_active=2)  # another caller has a limit of their own
    new_job(database, OTHER_KEY_ALICE, max_active=2)
    claim(database, first, T1)
    with pytest.raises(RateLimited):  # running counts as much as queued
        new_job(database, max_active=2)
    call(database, jobs.finish, first, T1, status="succeeded", result={"title": "done"})
    third = new_job(database, max_active=2)  # a finished job frees its place
    call(database, jobs.cancel, ALICE, second)
    new_job(database, max_active=2)  # and so does a cancelled one
    with database.session() as session:
        assert jobs.count(session, ALICE) == 4 and jobs.get(session, ALICE, third).status == "queued"


def test_concurrent_creates_at_the_limit_never_both_pass(database):
    outcomes = all_at_once(8, lambda _: new_job(database, max_active=3))
    created = [outcome for outcome in outcomes if isinstance(outcome, str)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, RateLimited)]
    assert (len(created), len(refused)) == (3, 5), outcomes
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 3


def test_a_claim_runs_the_job_under_a_lease_that_one_worker_holds(database):
    job_id = new_job(database)
    job = claim(database, job_id, T1)
    assert (job.status, job.attempts, job.lease_token) == ("running", 1, T1)
    assert job.started_at is not None and job.lease_until > job.started_at
    assert claim(database, job_id, T2) is None  # the lease is alive
    assert claim(database, "0" * 32, T2) is None
    assert (row(database, job_id).lease_token, row(database, job_id).attempts) == (T1, 1)


def test_two_workers_claiming_one_job_at_once_exactly_one_wins(database):
    job_id = new_job(database)
    outcomes = all_at_once(6, lambda i: claim(database, job_id, f"{i:032d}"))
    winners = [outcome for outcome in outcomes if isinstance(outcome, Job)]
    assert len(winners) == 1 and outcomes.count(None) == 5, outcomes
    stored = row(database, job_id)
    assert (stored.attempts, stored.lease_token) == (1, winners[0].lease_token)


def test_an_expired_lease_is_claimed_again_and_the_old_worker_told_to_stop(database):
    job_id = new_job(database)
    first = claim(database, job_id, T1)
    call(database, jobs.progress, job_id, T1, steps_done=1, steps_total=4)
    expire_lease(database, job_id)
    with database.session() as session:
        assert jobs.expired(session, utcnow(), limit=10) == [job_id]
    second = claim(database, job_id, T2)
    assert (second.status, second.attempts, second.lease_token) == ("running", 2, T2)
    assert second.started_at == first.started_at  # set on the first claim only
    old = call(database, jobs.renew, job_id, T1, 30)
    assert not old and not old.ours
    assert not call(database, jobs.progress, job_id, T1, steps_done=4, steps_total=4).ours
    assert call(database, jobs.finish, job_id, T1, status="succeeded", result={"stale": True}) is None
    assert (row(database, job_id).steps_done, row(database, job_id).status) == (1, "running")
    with database.session() as session:
        assert jobs.expired(session, utcnow(), limit=10) == []


@pytest.mark.parametrize("max_attempts, times", [(1, "1 time "), (2, "2 times")])
def test_a_job_out_of_attempts_is_failed_instead_of_claimed(database, max_attempts, times):
    job_id = new_job(database)
    for token in (T1, T2)[:max_attempts]:
        assert claim(database, job_id, token, max_attempts=max_attempts) is not None
        expire_lease(database, job_id)
    assert claim(database, job_id, T3, max_attempts=max_attempts) is None
    failed = row(database, job_id)
    assert (failed.status, failed.attempts, failed.lease_token, failed.lease_until) == ("failed", max_attempts,
                                                                                        None, None)
    assert failed.error["code"] == "JOB_FAILED" and f"attempted {times}" in failed.error["message"]
    assert failed.finished_at is not None
    assert not call(database, jobs.renew, job_id, T2 if max_attempts == 2 else T1, 30).ours
    with database.session() as session:
        assert jobs.expired(session, utcnow(), limit=10) == []


def test_renew_and_progress_extend_only_the_holders_lease(database):
    job_id = new_job(database)
    claim(database, job_id, T1, lease_seconds=10)
    before = row(database, job_id).lease_until
    lease = call(database, jobs.renew, job_id, T1, 60)
    assert lease and (lease.ours, lease.cancel_requested) == (True, False)
    renewed = row(database, job_id).lease_until
    assert renewed > before
    assert not call(database, jobs.renew, job_id, T2, 600).ours
    assert row(database, job_id).lease_until == renewed
    assert call(database, jobs.progress, job_id, T1, steps_done=2, steps_total=4)
    stored = row(database, job_id)
    assert (stored.steps_done, stored.steps_total, stored.progress, stored.lease_until) == (2, 4, 0.5, renewed)
    assert call(database, jobs.progress, job_id, T1, steps_done=3, steps_total=4, lease_seconds=120)
    assert row(database, job_id).lease_until > renewed and row(database, job_id).progress == 0.75


def test_finish_stores_the_outcome_and_releases_the_lease(database):
    done, broken = new_job(database), new_job(database)
    claim(database, done, T1)
    claim(database, broken, T2)
    call(database, jobs.progress, done, T1, steps_done=3, steps_total=4)
    finished = call(database, jobs.finish, done, T1, status="succeeded", result={"title": "Past simple"})
    assert (finished.status, finished.result, finished.error, finished.progress) == (
        "succeeded", {"title": "Past simple"}, None, 1.0)
    assert finished.finished_at is not None and finished.lease_token is None and finished.lease_until is None
    assert call(database, jobs.finish, done, T1, status="failed") is None  # no longer held
    error = {"code": "PROVIDER_ERROR", "message": "The AI provider failed"}
    failed = call(database, jobs.finish, broken, T2, status="failed", error=error)
    assert (failed.status, failed.error, failed.result, row(database, broken).error) == ("failed", error, None, error)
    with pytest.raises(ValueError):
        call(database, jobs.finish, broken, T2, status="running")


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
