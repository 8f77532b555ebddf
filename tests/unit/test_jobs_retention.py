"""Jobs as learner data (backend/db/jobs.py with backend/db/learner_data.py) on SQLite and PostgreSQL: erase counts
exactly the caller's jobs, export lists them without their leases, purge removes finished ones past retention."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from backend.db import jobs, learner_data
from backend.db.models import Job, utcnow
from backend.schemas.caller import Caller
from backend.services.learner_data import LearnerDataService, Retention
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
    new_job,
    row,
)


def test_erase_deletes_and_counts_exactly_the_callers_jobs(database):
    service = LearnerDataService(database, Retention(365, 48))
    running = new_job(database)
    claim(database, running, T1)
    new_job(database)
    bobs, others = new_job(database, BOB), new_job(database, OTHER_KEY_ALICE)
    assert service.usage_counts(ALICE) == {"conversations": 0, "jobs": 2}
    assert service.erase(ALICE) == {"conversations": 0, "messages": 0, "jobs": 2, "audio": 0}
    assert service.usage_counts(ALICE)["jobs"] == 0 and row(database, bobs) and row(database, others)
    assert not call(database, jobs.renew, running, T1, 30)  # the erased job's worker stops
    assert service.erase(ALICE)["jobs"] == 0
    assert service.usage_counts(BOB) == {"conversations": 0, "jobs": 1}


def test_export_lists_the_callers_jobs_without_their_leases(database):
    service = LearnerDataService(database, Retention(365, 48))
    done, queued = new_job(database), new_job(database, inputs={"topic": "alice's own topic"})
    new_job(database, OTHER_KEY_ALICE, inputs={"topic": "someone else's topic"})
    claim(database, done, T1)
    call(database, jobs.finish, done, T1, status="succeeded", result={"title": "Past simple"})
    exported = service.export(ALICE)
    assert [(job["id"], job["status"]) for job in exported["jobs"]] == [(done, "succeeded"), (queued, "queued")]
    assert exported["jobs"][0]["result"] == {"title": "Past simple"} and exported["jobs"][0]["finished_at"]
    assert exported["jobs"][1]["inputs"] == {"topic": "alice's own topic"}
    text = repr(exported)
    assert T1 not in text and "lease" not in text and "someone else's" not in text
    assert service.export(Caller("tester", "nobody"))["jobs"] == []


def test_purge_deletes_only_jobs_finished_before_the_retention(database):
    service, now = LearnerDataService(database, Retention(30, 48)), utcnow()
    old_done, recent_done, old_queued, old_running = (new_job(database) for _ in range(4))
    for job_id, token in ((old_done, T1), (recent_done, T2), (old_running, T3)):
        claim(database, job_id, token)
    call(database, jobs.finish, old_done, T1, status="failed")
    call(database, jobs.finish, recent_done, T2, status="succeeded")
    long_ago = now - timedelta(days=31)
    change(database, old_done, created_at=long_ago, finished_at=long_ago)
    change(database, recent_done, created_at=long_ago, finished_at=now - timedelta(days=29))
    change(database, old_queued, created_at=long_ago, updated_at=long_ago)
    change(database, old_running, created_at=long_ago, updated_at=long_ago)
    assert service.purge()["jobs"] == 1
    with database.session() as session:
        assert set(session.scalars(select(Job.id))) == {recent_done, old_queued, old_running}
    assert service.purge()["jobs"] == 0


def test_purge_deletes_jobs_in_batches(database):
    now = utcnow()
    for _ in range(3):
        job_id = new_job(database)
        call(database, jobs.cancel, ALICE, job_id)
        change(database, job_id, finished_at=now - timedelta(days=10))
    deleted = [call(database, learner_data.purge, older_than=now - timedelta(days=7), keys_older_than=now,
                    limit=2)["jobs"] for _ in range(3)]
    assert deleted == [2, 1, 0]
    assert LearnerDataService(database, Retention(7, 48)).usage_counts(ALICE)["jobs"] == 0
