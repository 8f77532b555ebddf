"""Background job settings: the lease a worker holds a job by, how many jobs a caller may have, how often one runs."""
from __future__ import annotations

from pydantic import BaseModel, Field


class JobSettings(BaseModel):
    """Leases, the per-caller limit and attempts of background jobs (lessons)."""

    # A worker renews its lease while it works; a dead worker's job is claimed again once the lease runs out, so
    # this bounds how long a job waits after a crash (the contract's JOB_LEASE_SECONDS).
    job_lease_seconds: int = Field(30, ge=5, le=600)
    # Queued or running jobs per caller; beyond it, 429 RATE_LIMITED (MAX_ACTIVE_JOBS_PER_CALLER).
    max_active_jobs_per_caller: int = Field(3, ge=1, le=100)
    # Claims of one job (the first run and every re-run after a lost lease) before it is marked failed: a job that
    # kills its worker each time must not be run for ever.
    job_max_attempts: int = Field(3, ge=1, le=20)
    # A job worker serves its own Prometheus metrics (jobs_total, job_duration_seconds, its upstream calls) on this
    # port when set (0 = off): in a container or a pod of its own it shares no metrics directory with the web
    # server, so Prometheus scrapes it as a target of its own.
    job_worker_metrics_port: int = Field(0, ge=0, le=65535)
