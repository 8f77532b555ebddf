"""Background jobs as the API shows them (contract section 10): submit, read, cancel, always for one caller.

The row is written first and committed, then the job is handed to the engine: a job whose message is lost (the
engine down at that moment) is still queued in the database, and the sweeper hands it over later."""
from __future__ import annotations

import logging
from typing import Any, Callable

from backend.db import jobs as repo
from backend.db.engine import Database
from backend.db.models import Job, start_of_today
from backend.errors import DatabaseUnavailable
from backend.schemas.caller import Caller
from backend.schemas.lessons import LessonInputs

logger = logging.getLogger(__name__)


def status_url(job_id: str) -> str:
    return f"/api/jobs/{job_id}"


def job_view(job: Job) -> dict[str, Any]:
    """A job as GET /api/jobs/{id} shows it."""
    return {"id": job.id, "kind": job.kind, "status": job.status, "progress": float(job.progress or 0.0),
            "created_at": job.created_at.isoformat(),
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "result": job.result if job.status == repo.SUCCEEDED else None,
            "error": job.error if job.status == repo.FAILED else None}


class JobService:
    """The caller's jobs: a row each in the database, carried by the job engine (``enqueue(kind, job_id)``)."""

    def __init__(self, database: Database, enqueue: Callable[[str, str], None], *, max_active: int):
        self._db = database
        self._enqueue = enqueue
        self._max_active = max_active

    def submit(self, caller: Caller, inputs: LessonInputs) -> dict[str, Any]:
        """A queued lesson job (RATE_LIMITED beyond the caller's active jobs): {job_id, status, status_url}."""
        with self._db.session(write=True) as session:
            job = repo.create(session, caller, "lesson", inputs.model_dump(mode="json"), max_active=self._max_active)
        try:
            self._enqueue("lesson", job.id)
        except Exception:
            # The job stays queued in the database: the sweeper hands it over once the engine is back.
            logger.warning("could not enqueue a job; the sweeper will", extra={"job_id": job.id}, exc_info=True)
        return {"job_id": job.id, "status": job.status, "status_url": status_url(job.id)}

    def get(self, caller: Caller, job_id: str) -> dict[str, Any]:
        """The caller's job (NOT_FOUND when it is not theirs)."""
        with self._db.session() as session:
            return job_view(repo.get(session, caller, job_id))

    def cancel(self, caller: Caller, job_id: str) -> dict[str, Any]:
        """Cancel an active job, or delete a finished one: {"id", "cancelled"|"deleted": True}."""
        with self._db.session(write=True) as session:
            outcome = repo.cancel(session, caller, job_id)
        return {"id": job_id, outcome: True}

    def today(self) -> dict[str, int] | None:
        """Every caller's jobs queued and running now, failed and succeeded today (UTC), for operators; None while
        the database does not answer."""
        midnight = start_of_today()
        try:
            with self._db.session() as session:
                counts = repo.counts_by_status(session, finished_since=midnight)
        except DatabaseUnavailable:
            return None
        return {status: counts[status] for status in (repo.QUEUED, repo.RUNNING, repo.FAILED, repo.SUCCEEDED)}

    def queue_depth(self, kind: str = "lesson") -> int:
        """Jobs of ``kind`` queued now, every caller's (the job_queue_depth gauge)."""
        with self._db.session() as session:
            return repo.counts_by_status(session, kind=kind)[repo.QUEUED]
