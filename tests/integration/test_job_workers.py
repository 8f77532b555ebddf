"""Real job worker processes (`python -m backend.jobs.worker`, as the Procfile's `worker:` line runs them) on the
embedded default (SQLite database and queue, disk cache) and on Redis (PostgreSQL database, Redis queue and cache):
a lesson end to end; a worker killed mid-lesson, whose job another worker finishes once the lease runs out without
paying again for the steps done; a worker stopped by SIGTERM, which hands its job back."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from backend.db import jobs as repo
from backend.db.engine import Database
from backend.jobs.engine import JobEngine
from backend.schemas.caller import Caller
from backend.schemas.lessons import LessonInputs
from backend.services.jobs import JobService
from backend.settings import load_settings
from tests.conftest import FAKE_PROVIDER_KEY
from tests.integration.servers import ROOT, _base_env
from tests.redis_helpers import spare_port

CALLER = Caller("tester", "learner-1")
LEASE = 5


@pytest.fixture
def worker_env(database_url, fake_gemini, tmp_path):
    """The workers' configuration: SQLite + embedded queue + disk cache, or PostgreSQL + Redis."""
    env = {"APP_ENV": "testing", "DATABASE_URL": database_url, "GEMINI_API_KEY": FAKE_PROVIDER_KEY,
           "GEMINI_BASE_URL": fake_gemini.base_url, "GEMINI_TIMEOUT_SECONDS": "5", "JOB_LEASE_SECONDS": str(LEASE),
           "LOG_LEVEL": "INFO"}
    if database_url.startswith("sqlite"):
        env.update(CACHE_MODE="disk", CACHE_DIR=str(tmp_path / "cache"))
    else:
        env.update(REDIS_URL="redis://127.0.0.1:6379/0", CACHE_MODE="redis",
                   REDIS_KEY_PREFIX=f"test-jobs-{uuid.uuid4().hex[:8]}:")
    return env


class Worker:
    """One `python -m backend.jobs.worker` process."""

    def __init__(self, env: dict[str, str], threads: int = 1):
        self.log = Path(tempfile.mkstemp(prefix="job-worker-", suffix=".log")[1])
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "backend.jobs.worker", "-w", str(threads)],
                                            cwd=ROOT, env={**_base_env(), **env}, stdout=log, stderr=log,
                                            start_new_session=True)

    def signal(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def workers():
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture
def service(worker_env):
    """Submits jobs as the web app does: a row, then a message through the engine for the same settings."""
    settings = load_settings(worker_env)
    database = Database(settings.database_url)
    engine = JobEngine(settings)
    yield JobService(database, engine.enqueue, max_active=3), database
    database.dispose()


def _topic():
    """A topic of this test's own: answers cached by another test (Redis keeps them) must not count."""
    return f"Travel {uuid.uuid4().hex[:8]}"


def _row(database, job_id):
    with database.session() as session:
        return repo.get(session, CALLER, job_id)


def _wait(database, job_id, done, timeout=40.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _row(database, job_id)
        if done(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job.status} ({job.steps_done}/{job.steps_total})")


def _plans_asked(fake):
    """Lesson plans the fake was asked for (other requests in its log, e.g. a call another test's background thread
    made, have no response schema and are not plans)."""
    def title(request):
        config = (request.get("body") or {}).get("generationConfig") or {}
        return (config.get("responseJsonSchema") or {}).get("title")

    return sum(1 for request in fake.requests() if title(request) == "LessonPlan")


def _slow_lesson_under_way(service, worker_env, workers, fake_gemini, *, steps_done: int) -> tuple[int, Worker, str]:
    """A four-section lesson (slow fake) on a first worker, once it has done ``steps_done`` steps: (its steps, that
    worker, the job's id)."""
    jobs, database = service
    fake_gemini.configure(latency_ms=300)
    first = Worker(worker_env)
    workers.append(first)
    job_id = jobs.submit(CALLER, LessonInputs(topic=_topic(), sections=4))["job_id"]
    _wait(database, job_id, lambda j: j.steps_done >= steps_done)
    return 1 + 2 * 4, first, job_id


def test_a_worker_runs_a_lesson_job_end_to_end(service, worker_env, workers, fake_gemini):
    jobs, database = service
    port = spare_port()
    workers.append(Worker({**worker_env, "JOB_WORKER_METRICS_PORT": str(port)}, threads=2))
    job_id = jobs.submit(CALLER, LessonInputs(topic=_topic(), sections=2))["job_id"]
    job = _wait(database, job_id, lambda j: j.status in repo.FINISHED)
    assert job.status == "succeeded" and job.progress == 1.0 and len(job.result["sections"]) == 2
    assert job.attempts == 1 and fake_gemini.calls == 1 + 2 * 2
    # The worker's own /metrics (JOB_WORKER_METRICS_PORT): what a scrape of a worker pod or container reads.
    exposition = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'jobs_total{kind="lesson",status="succeeded"} 1.0' in exposition
    calls = [line for line in exposition.splitlines()
             if line.startswith("ai_upstream_calls_total{") and 'provider="gemini"' in line and 'outcome="ok"' in line]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in calls) == 1 + 2 * 2


def test_a_killed_workers_job_is_finished_by_another_without_paying_twice(service, worker_env, workers,
                                                                           fake_gemini):
    database = service[1]
    steps, first, job_id = _slow_lesson_under_way(service, worker_env, workers, fake_gemini, steps_done=3)
    first.signal(signal.SIGKILL)
    first.process.wait(10)
    at_kill = _row(database, job_id)
    calls_at_kill = fake_gemini.calls
    assert at_kill.status == "running" and at_kill.steps_done < steps
    workers.append(Worker(worker_env))
    job = _wait(database, job_id, lambda j: j.status in repo.FINISHED, timeout=60)
    assert job.status == "succeeded" and job.attempts == 2 and len(job.result["sections"]) == 4
    # The steps recorded as done came from the cache: only those not done at the kill were asked again.
    assert _plans_asked(fake_gemini) == 1
    assert steps <= fake_gemini.calls <= calls_at_kill + (steps - at_kill.steps_done)


def test_sigterm_hands_the_job_back_and_the_next_worker_pays_nothing_twice(service, worker_env, workers,
                                                                           fake_gemini):
    database = service[1]
    steps, first, job_id = _slow_lesson_under_way(service, worker_env, workers, fake_gemini, steps_done=1)
    first.signal(signal.SIGTERM)
    assert first.process.wait(20) == 0  # a graceful exit, once the steps in flight finished
    handed = _row(database, job_id)
    # Queued again at once, and the stop did not count as an attempt (a deploy is not the job's failure).
    assert (handed.status, handed.attempts, handed.lease_token) == ("queued", 0, None)
    assert handed.steps_done < steps
    started = time.monotonic()
    workers.append(Worker(worker_env))
    job = _wait(database, job_id, lambda j: j.status in repo.FINISHED, timeout=60)
    assert job.status == "succeeded" and job.attempts == 1
    # Handed back, not left to the lease and the sweeper: picked up from the queue at once.
    assert time.monotonic() - started < 10 + LEASE
    assert fake_gemini.calls == steps and _plans_asked(fake_gemini) == 1
