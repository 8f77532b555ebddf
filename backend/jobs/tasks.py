"""The tasks that run jobs, as microblog's tasks.py: a task builds what it needs without a request (one Backend per
worker process) and trusts only the job's row.

A run claims the job under a lease (a fresh token), generates the lesson step by step, renews the lease after
every step (and before one when it is getting old), and stores the outcome; a run that lost its lease writes
nothing. A job cancelled meanwhile only has its lease released. On a graceful stop (SIGTERM to the worker) the run
stops at its next step boundary and hands the job back: its lease ends now and the job is enqueued again, so
another worker continues it at once and finds the finished steps in the cache. The sweeper, a periodic task,
re-enqueues jobs whose worker died (lease ran out) or whose message was lost."""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from huey import Huey
from huey.api import TaskWrapper

from backend.db import jobs as repo
from backend.db.models import utcnow
from backend.errors import AppError, DatabaseUnavailable
from backend.observability.metrics import JOB_DURATION, JOBS_TOTAL
from backend.resilience import spend
from backend.schemas.caller import Caller
from backend.services.lessons import LessonCancelled

if TYPE_CHECKING:
    from backend.composition import Backend

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 100
DEFECT = {"code": "INTERNAL_ERROR", "message": "The lesson could not be generated"}

_process_backend: Backend | None = None
_process_lock = threading.Lock()


def process_backend() -> Backend:
    """This process's Backend, built on first use from the environment (one per worker process)."""
    global _process_backend
    if _process_backend is None:
        with _process_lock:
            if _process_backend is None:
                from backend.composition import build_backend
                from backend.settings import load_settings

                _process_backend = build_backend(load_settings())
    return _process_backend


@dataclass
class _Run:
    """One run's hold on its job: the lease, renewed as steps finish; why it should stop, when it should."""

    backend: Backend
    job_id: str
    token: str
    stopping: threading.Event
    lease: repo.Lease = field(default_factory=lambda: repo.Lease(ours=True))
    renewed: float = field(default_factory=time.monotonic)

    @property
    def lease_seconds(self) -> int:
        return self.backend.settings.job_lease_seconds

    def on_step(self, done: int, total: int) -> None:
        """Record the progress and renew the lease in one statement (a write session: on SQLite it waits for the
        write lock before it begins, in fine steps, instead of upgrading a read with SQLite's coarse back-off)."""
        with self.backend.database.session(write=True) as session:
            self.lease = repo.progress(session, self.job_id, self.token, steps_done=done, steps_total=total,
                                       lease_seconds=self.lease_seconds)
        self.renewed = time.monotonic()

    def should_stop(self) -> bool:
        """Stop when the worker is stopping, the job was cancelled or the lease is lost; renew an old lease first,
        so a long wait for a free step slot does not let it run out."""
        if self.stopping.is_set() or not self.lease:
            return True
        if time.monotonic() - self.renewed > self.lease_seconds / 3:
            with self.backend.database.session(write=True) as session:
                self.lease = repo.renew(session, self.job_id, self.token, self.lease_seconds)
            self.renewed = time.monotonic()
        return not self.lease


def run_lesson(backend: Backend, job_id: str, *, stopping: threading.Event,
               hand_back: Callable[[str], None]) -> str:
    """Run one lesson job if it is to be run; what happened: succeeded, failed, cancelled, handed_back, lost or
    skipped (not claimable: finished, cancelled, held by a live lease, or out of attempts)."""
    settings = backend.settings
    token = uuid.uuid4().hex
    with backend.database.session(write=True) as session:
        job = repo.claim(session, job_id, token=token, lease_seconds=settings.job_lease_seconds,
                         max_attempts=settings.job_max_attempts)
        inputs: dict[str, Any] = dict(job.inputs) if job is not None else {}
        caller = Caller(job.client, job.user_id) if job is not None else None
    if job is None or caller is None:
        return "skipped"
    run, started = _Run(backend, job_id, token, stopping), time.monotonic()
    try:
        # The job's steps are charged to the caller who asked for it, within its daily budgets.
        with spend.paying(backend.budgets.account(caller)):
            lesson = backend.lessons.generate(inputs, on_step=run.on_step, should_stop=run.should_stop)
        outcome = _finish(backend, job_id, token, "succeeded", result=lesson)
    except LessonCancelled:
        outcome = _stopped(backend, run, hand_back)
    except DatabaseUnavailable:
        # The progress could not be stored: stop; the lease runs out and the sweeper hands the job on.
        logger.warning("a lesson job lost its database", extra={"job_id": job_id})
        outcome = "lost"
    except AppError as exc:  # the plan's (or every section's) ProviderError, after retries and the fallback
        outcome = _finish(backend, job_id, token, "failed", error={"code": exc.code, "message": exc.message})
    except Exception:
        logger.exception("a lesson job failed with a defect", extra={"job_id": job_id})
        outcome = _finish(backend, job_id, token, "failed", error=dict(DEFECT))
    if outcome in ("succeeded", "failed"):
        JOB_DURATION.labels("lesson").observe(time.monotonic() - started)
    JOBS_TOTAL.labels("lesson", outcome).inc()
    logger.info("lesson job run ended", extra={"job_id": job_id, "outcome": outcome})
    return outcome


def _finish(backend: Backend, job_id: str, token: str, status: Any, *, result: dict[str, Any] | None = None,
            error: dict[str, Any] | None = None) -> str:
    """Store the outcome under our lease; "lost" when the lease is no longer ours, "cancelled" when the job was
    cancelled meanwhile (only the lease was released), "lost" too when the database cannot be reached (the lease
    runs out and the sweeper hands the job on)."""
    try:
        with backend.database.session(write=True) as session:
            job = repo.finish(session, job_id, token, status=status, result=result, error=error)
    except DatabaseUnavailable:
        logger.warning("could not store a job's outcome", extra={"job_id": job_id})
        return "lost"
    if job is None:
        return "lost"
    return str(job.status) if job.status != status else status


def _stopped(backend: Backend, run: _Run, hand_back: Callable[[str], None]) -> str:
    """The generator stopped at a step boundary: release a cancelled job, hand a job back on a graceful stop."""
    if run.lease.cancel_requested:
        _finish(backend, run.job_id, run.token, "cancelled")
        return "cancelled"
    if not run.lease.ours:
        return "lost"
    # A graceful stop: the job queued again at once, without counting the attempt, and handed to another worker.
    with backend.database.session(write=True) as session:
        lease = repo.release(session, run.job_id, run.token)
    if lease.cancel_requested:
        _finish(backend, run.job_id, run.token, "cancelled")
        return "cancelled"
    if lease.ours:
        hand_back(run.job_id)
    return "handed_back"


def sweep(backend: Backend, enqueue: Callable[[str, str], None], now: datetime | None = None) -> int:
    """Hand lost jobs to the engine again (a claim lets one worker have each); how many."""
    with backend.database.session() as session:
        ids = repo.expired(session, now or utcnow(), limit=SWEEP_LIMIT)
    for job_id in ids:
        enqueue("lesson", job_id)
    if ids:
        logger.info("re-enqueued lost jobs", extra={"count": len(ids)})
    return len(ids)


def _always(timestamp: datetime) -> bool:
    """A periodic task due at every check of the scheduler (the worker sets how often it checks)."""
    return True


@dataclass
class JobTasks:
    """The tasks registered on one Huey, and the flag that asks running jobs to stop (set on SIGTERM)."""

    huey: Huey
    lesson: TaskWrapper
    sweeper: TaskWrapper
    stopping: threading.Event

    def enqueue(self, kind: str, job_id: str) -> None:
        """Hand a job to the engine."""
        if kind != "lesson":
            raise ValueError(f"unknown job kind {kind!r}")
        self.lesson(job_id)


def register(huey: Huey, backend: Callable[[], Backend]) -> JobTasks:
    """Register the tasks on ``huey``; ``backend`` gives the Backend a task runs with (built on first use)."""
    stopping = threading.Event()
    tasks: JobTasks

    def lesson(job_id: str) -> None:
        run_lesson(backend(), job_id, stopping=stopping, hand_back=lambda job: tasks.enqueue("lesson", job))

    def sweep_jobs() -> None:
        sweep(backend(), tasks.enqueue)

    tasks = JobTasks(huey, huey.task(name="lesson")(lesson),
                     huey.periodic_task(_always, name="sweep_jobs")(sweep_jobs), stopping)
    return tasks
