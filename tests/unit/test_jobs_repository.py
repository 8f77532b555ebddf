"""The jobs repository (backend/db/jobs.py) on SQLite and a real PostgreSQL: the per-caller limit (under
concurrency too), claims that one worker wins, leases that expire and are claimed again, attempts that run out, and
finishing. Cancellation, release and the operators' views: test_jobs_cancel_release.py."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from backend.db import jobs
from backend.db.models import Job, utcnow
from backend.errors import NotFound, RateLimited
from backend.schemas.caller import Caller
from tests.unit.jobs_repository_helpers import (
    ALICE,
    BOB,
    LESSON,
    OTHER_KEY_ALICE,
    T1,
    T2,
    T3,
    all_at_once,
    call,
    claim,
    database_fixture,  # noqa: F401  (the database fixture)
    expire_lease,
    new_job,
    row,
)


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
