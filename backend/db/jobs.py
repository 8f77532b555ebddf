"""Background jobs, data first: the row is the truth about a job (status, progress, lease, attempts); the job engine
only carries work and may lose it. Callers' queries filter by the caller; a worker's by its lease token."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, delete, func, literal, or_, select, text, update
from sqlalchemy.orm import Session

from backend.db.conversations import new_id
from backend.db.models import Job, UTCDateTime, utcnow
from backend.db.timing import statement
from backend.errors import NotFound, RateLimited
from backend.schemas.caller import Caller

KINDS = ("lesson",)
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
STATUSES = ACTIVE + FINISHED
NOT_FOUND = "No such job"
RETRY_AFTER_SECONDS = 5.0
# A queued job never claimed this long after it was created is handed to the engine again (its message was lost).
QUEUED_GRACE_SECONDS = 120.0
# First key of the per-caller advisory lock ('jobs' in ASCII): the two-key space is apart from single-key locks.
ADVISORY_NAMESPACE = 0x6A6F6273


@dataclass(frozen=True)
class Lease:
    """What a worker learns when it renews its lease or reports progress; truthy while it should keep working."""

    ours: bool
    cancel_requested: bool = False

    def __bool__(self) -> bool:
        return self.ours and not self.cancel_requested


def owned(caller: Caller) -> ColumnElement[bool]:
    """The filter every query of a caller's jobs carries."""
    return and_(Job.client == caller.client, Job.user_id == caller.user_id)


def create(session: Session, caller: Caller, kind: str, inputs: dict[str, Any], *, max_active: int) -> Job:
    """A new queued job, or RATE_LIMITED when the caller already has ``max_active`` queued or running.

    Run it in a write session: counting and inserting must be one decision per caller. SQLite's BEGIN IMMEDIATE
    already serialises writers; PostgreSQL takes a per-caller advisory lock until the commit, because locking the
    caller's active rows locks nothing when there are none, and two creates would both count them and both insert.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    if session.get_bind().dialect.name == "postgresql":
        with statement("jobs.lock_caller"):
            session.execute(text(f"SELECT pg_advisory_xact_lock({ADVISORY_NAMESPACE}, hashtext(:caller))"),
                            {"caller": f"{caller.client}\x1f{caller.user_id}"})
    with statement("jobs.count_active"):
        active = session.scalar(select(func.count()).select_from(Job)
                                .where(owned(caller), Job.status.in_(ACTIVE))) or 0
    if active >= max_active:
        raise RateLimited(f"At most {max_active} jobs may be queued or running at once; retry when one finishes",
                          retry_after=RETRY_AFTER_SECONDS, details={"max_active_jobs": max_active})
    now = utcnow()
    job = Job(id=new_id(), kind=kind, client=caller.client, user_id=caller.user_id, status=QUEUED,
              cancel_requested=False, inputs=inputs, result=None, error=None, progress=0.0, steps_done=0,
              steps_total=0, attempts=0, lease_token=None, lease_until=None, created_at=now, started_at=None,
              finished_at=None, updated_at=now)
    with statement("jobs.create"):
        session.add(job)
        session.flush()
    return job


def get(session: Session, caller: Caller, job_id: str) -> Job:
    """The caller's job, or NOT_FOUND (also when it is someone else's)."""
    with statement("jobs.get"):
        job = session.scalars(select(Job).where(Job.id == job_id, owned(caller))).first()
    if job is None:
        raise NotFound(NOT_FOUND)
    return job


def count(session: Session, caller: Caller) -> int:
    """How many jobs the caller has, in any state."""
    with statement("jobs.count"):
        return session.scalar(select(func.count()).select_from(Job).where(owned(caller))) or 0


def claim(session: Session, job_id: str, *, token: str, lease_seconds: float, max_attempts: int) -> Job | None:
    """Take the job to run it: a queued one, or a running one whose worker's lease ran out. None when it is not to
    be run (finished, cancelled, unknown, or held by a live lease); a job already attempted ``max_attempts`` times
    is marked failed instead.

    One conditional UPDATE decides, as in turns.take_lease: two workers handed the same job (the sweeper re-enqueued
    it, the engine delivered it twice) never both run it. Call it in a write session."""
    now = utcnow()
    with statement("jobs.claim"):
        claimed = session.scalars(
            update(Job)
            .where(Job.id == job_id, _claimable(now), Job.attempts < max_attempts)
            .values(status=RUNNING, lease_token=token, lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=Job.attempts + 1, started_at=func.coalesce(Job.started_at, literal(now, UTCDateTime())),
                    updated_at=now)
            .returning(Job)
            .execution_options(synchronize_session=False, populate_existing=True)).first()
    if claimed is not None:
        return claimed
    # Refused: mark it failed if that was for its attempts (read only on this slow path).
    with statement("jobs.claim_refused"):
        attempts = session.scalar(select(Job.attempts).where(Job.id == job_id, _claimable(now),
                                                             Job.attempts >= max_attempts))
    if attempts is not None:
        times = f"{attempts} time{'' if attempts == 1 else 's'}"
        with statement("jobs.fail_exhausted"):
            session.execute(
                update(Job)
                .where(Job.id == job_id, _claimable(now), Job.attempts == attempts)
                .values(status=FAILED, lease_token=None, lease_until=None, finished_at=now, updated_at=now,
                        error={"code": "JOB_FAILED",
                               "message": f"The job was attempted {times} without finishing; it will not run again"})
                .execution_options(synchronize_session=False))
    return None


def renew(session: Session, job_id: str, token: str, lease_seconds: float) -> Lease:
    """Extend the worker's lease; falsy when the worker should stop (the lease is no longer its own, or the job was
    cancelled meanwhile)."""
    now = utcnow()
    with statement("jobs.renew"):
        cancel_requested = session.scalar(
            update(Job)
            .where(Job.id == job_id, Job.lease_token == token)
            .values(lease_until=now + timedelta(seconds=lease_seconds))
            .returning(Job.cancel_requested)
            .execution_options(synchronize_session=False))
    return Lease(ours=cancel_requested is not None, cancel_requested=bool(cancel_requested))


def progress(session: Session, job_id: str, token: str, *, steps_done: int, steps_total: int,
             lease_seconds: float | None = None) -> Lease:
    """Record the steps done (and renew the lease, given ``lease_seconds``); falsy when the worker should stop."""
    now = utcnow()
    values: dict[str, Any] = {"steps_done": steps_done, "steps_total": steps_total, "updated_at": now,
                              "progress": min(1.0, max(0.0, steps_done / steps_total)) if steps_total > 0 else 0.0}
    if lease_seconds is not None:
        values["lease_until"] = now + timedelta(seconds=lease_seconds)
    with statement("jobs.progress"):
        cancel_requested = session.scalar(
            update(Job).where(Job.id == job_id, Job.lease_token == token).values(**values)
            .returning(Job.cancel_requested).execution_options(synchronize_session=False))
    return Lease(ours=cancel_requested is not None, cancel_requested=bool(cancel_requested))


def finish(session: Session, job_id: str, token: str, *, status: Literal["succeeded", "failed", "cancelled"],
           result: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> Job | None:
    """End the worker's run: store its outcome and release the lease; the job as stored, or None when the lease is
    no longer the worker's (nothing is written). A job cancelled while running stays cancelled, without result."""
    if status not in FINISHED:
        raise ValueError(f"a job finishes as one of {FINISHED}, not {status!r}")
    now = utcnow()
    values: dict[str, Any] = {"status": status, "result": result, "error": error, "lease_token": None,
                              "lease_until": None, "finished_at": now, "updated_at": now}
    if status == SUCCEEDED:
        values["progress"] = 1.0
    with statement("jobs.finish"):
        finished = session.scalars(
            update(Job).where(Job.id == job_id, Job.lease_token == token, Job.cancel_requested.is_(False))
            .values(**values).returning(Job)
            .execution_options(synchronize_session=False, populate_existing=True)).first()
        if finished is not None:
            return finished
        # Cancelled while it ran: it was finished by the cancel; only the lease is left to release.
        return session.scalars(
            update(Job).where(Job.id == job_id, Job.lease_token == token, Job.cancel_requested.is_(True))
            .values(lease_token=None, lease_until=None, updated_at=now).returning(Job)
            .execution_options(synchronize_session=False, populate_existing=True)).first()


def release(session: Session, job_id: str, token: str) -> Lease:
    """Hand a job back on a graceful stop (a deploy): queued again at once, its lease ended, and the attempt not
    counted — a stop is not the job's failure, and three deploys during one lesson must not fail it. A job cancelled
    meanwhile says so (``cancel_requested``); one no longer ours says that (``ours`` False)."""
    now = utcnow()
    with statement("jobs.release"):
        released = session.scalars(
            update(Job).where(Job.id == job_id, Job.lease_token == token, Job.cancel_requested.is_(False))
            .values(status=QUEUED, lease_token=None, lease_until=None, updated_at=now,
                    attempts=case((Job.attempts > 0, Job.attempts - 1), else_=0))
            .returning(Job.id).execution_options(synchronize_session=False)).first()
    if released is not None:
        return Lease(ours=True)
    with statement("jobs.release_check"):
        cancelled = session.scalars(select(Job.id).where(Job.id == job_id, Job.lease_token == token,
                                                         Job.cancel_requested.is_(True))).first()
    return Lease(ours=cancelled is not None, cancel_requested=cancelled is not None)


def cancel(session: Session, caller: Caller, job_id: str) -> Literal["cancelled", "deleted"]:
    """Cancel the caller's queued or running job, or delete a finished one; NOT_FOUND when there is none.

    A running job's worker keeps its lease and stops at its next step boundary, when renew or progress tells it;
    its status is cancelled at once, so the sweeper and claims leave it alone even if that worker died."""
    now = utcnow()
    with statement("jobs.cancel"):
        cancelled = session.execute(
            update(Job).where(Job.id == job_id, owned(caller), Job.status.in_(ACTIVE))
            .values(status=CANCELLED, cancel_requested=True, finished_at=now, updated_at=now)
            .execution_options(synchronize_session=False))
    if cancelled.rowcount:  # type: ignore[attr-defined]
        return "cancelled"
    # Not active: finished (a status that never changes again), or not there.
    with statement("jobs.delete"):
        deleted = session.execute(delete(Job).where(Job.id == job_id, owned(caller), Job.status.in_(FINISHED))
                                  .execution_options(synchronize_session=False))
    if deleted.rowcount:  # type: ignore[attr-defined]
        return "deleted"
    raise NotFound(NOT_FOUND)


def expired(session: Session, now: datetime, *, limit: int, queued_for: float = QUEUED_GRACE_SECONDS) -> list[str]:
    """Jobs to hand to the engine again, oldest first: running ones whose lease ran out (their worker died), and
    queued ones never claimed ``queued_for`` seconds after they were created (their message was lost). Handing a
    job over twice is harmless: claim lets one worker have it."""
    lost = or_(and_(Job.status == RUNNING, Job.lease_until < now),
               and_(Job.status == QUEUED, Job.created_at < now - timedelta(seconds=queued_for)))
    with statement("jobs.expired"):
        return list(session.scalars(select(Job.id).where(lost).order_by(Job.created_at, Job.id).limit(limit)))


def counts_by_status(session: Session, *, finished_since: datetime | None = None,
                     kind: str | None = None) -> dict[str, int]:
    """Every caller's jobs by status (all five, zeros included): queued and running now, and the finished ones
    (since ``finished_since``, when given: "failed today"). Operators' figures: counts only."""
    query = select(Job.status, func.count()).group_by(Job.status)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if finished_since is not None:
        query = query.where(or_(Job.status.in_(ACTIVE), Job.finished_at >= finished_since))
    with statement("jobs.counts"):
        found = {status: int(n) for status, n in session.execute(query)}
    return {status: found.get(status, 0) for status in STATUSES}


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Queued, or running under a lease that ran out."""
    return or_(Job.status == QUEUED, and_(Job.status == RUNNING, Job.lease_until < now))
